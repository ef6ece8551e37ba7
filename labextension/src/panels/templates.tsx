/**
 * "Start a project": copy a project template (the cell-detection reference project) into a new
 * folder of the workspace and open its README.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Button, InputGroup, ReactWidget } from '@jupyterlab/ui-components';
import React, { useEffect, useRef, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { copyTemplate, ICopiedTemplate, ITemplate, listTemplates } from '../api/templates';

function TemplateRow(props: {
  template: ITemplate;
  onCopied: (c: ICopiedTemplate) => Promise<void>;
}): JSX.Element {
  const t = props.template;
  const [dest, setDest] = useState(t.default_dest);
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const copy = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setMessage(null);
    try {
      const copied = await copyTemplate(t.name, dest.trim());
      setMessage({ ok: true, text: `Copied ${copied.files.length} files into ${copied.path}/` });
      await props.onCopied(copied);
    } catch (err: any) {
      setMessage({ ok: false, text: err.message });
    } finally {
      setBusy(false);
    }
  };
  const label = `Copy the ${t.title.toLowerCase()} template`;
  // The sidebar's sections share its height: keep the outcome in sight when it arrives.
  const said = useRef<HTMLDivElement>(null);
  // (scrolling only this section: scrollIntoView would also shift the sidebar's own layout)
  useEffect(() => {
    const el = said.current;
    const box = el?.closest('.jp-mlops-section');
    if (el && box) {
      const below = el.getBoundingClientRect().bottom - box.getBoundingClientRect().bottom;
      if (below > 0) {
        box.scrollTop += below;
      }
    }
  }, [message]);
  return (
    <form className="jp-mlops-template" onSubmit={copy} data-testid={`template-${t.name}`}>
      <Button
        type="submit"
        small
        disabled={busy || !dest.trim()}
        title={`${t.title}: ${t.description}`}
      >
        {busy ? 'Copying…' : label}
      </Button>
      <label className="jp-mlops-template-dest">
        <span className="jp-mlops-label">into folder</span>
        <InputGroup
          className="jp-mlops-input-group"
          value={dest}
          onChange={e => setDest(e.target.value)}
          aria-label={`Folder for the ${t.title.toLowerCase()} template`}
        />
      </label>
      {message && (
        <div
          ref={said}
          className={message.ok ? 'jp-mlops-ok-text' : 'jp-mlops-error'}
          role={message.ok ? 'status' : 'alert'}
        >
          {message.text}
        </div>
      )}
    </form>
  );
}

function TemplatesView(props: { app: JupyterFrontEnd }): JSX.Element {
  const [templates, setTemplates] = useState<ITemplate[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    listTemplates().then(
      r => setTemplates(r.templates),
      e => setError(e.message)
    );
  }, []);
  const opened = async (copied: ICopiedTemplate) => {
    const { commands } = props.app;
    // show the new folder in the file browser (without stealing the sidebar), then the README
    if (commands.hasCommand('filebrowser:go-to-path')) {
      await commands
        .execute('filebrowser:go-to-path', { path: copied.path, dontShowBrowser: true })
        .catch(() => undefined);
    }
    // a README reads best rendered; anything else opens with its default viewer
    const factory = /\.md$/i.test(copied.open) ? 'Markdown Preview' : undefined;
    await commands.execute('docmanager:open', {
      path: copied.open,
      ...(factory ? { factory } : {})
    });
  };
  if (error) {
    return <ErrorLine error={error} />;
  }
  if (!templates) {
    return <div className="jp-mlops-muted">Loading templates…</div>;
  }
  return (
    <div className="jp-mlops-templates">
      {templates.map(t => (
        <TemplateRow key={t.name} template={t} onCopied={opened} />
      ))}
    </div>
  );
}

/** The "Start a project" section of the MLOps sidebar. */
export class TemplatesPanel extends ReactWidget {
  constructor(private _app: JupyterFrontEnd) {
    super();
    this.addClass('jp-mlops-section');
    this.addClass('jp-mlops-templates-section');
    this.title.label = 'Start a project';
    this.title.caption = 'Copy a reference project into your workspace';
  }

  render(): JSX.Element {
    return <TemplatesView app={this._app} />;
  }
}
