/**
 * Models: registered models, their versions with aliases, tags and source run; set or move an
 * alias. Other capabilities add buttons to every version through `modelVersionActions`:
 *
 *   import { modelVersionActions } from './panels/models';
 *   modelVersionActions.add({
 *     id: 'deploy', label: 'Deploy', execute: async version => { ... }
 *   });
 *
 * An action with `render` opens a small form of its own under the version instead (e.g.
 * "Batch predict…", which asks for a dataset version first).
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { Button, InputGroup, SidePanel } from '@jupyterlab/ui-components';
import { Signal } from '@lumino/signaling';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { NameSelect } from '../components/fields';
import { usePolledList, useRemote } from '../components/hooks';
import { SectionReload, SidebarSection } from '../components/sidebarSection';
import { IModel, IModelVersion, listVersions, setAlias as pointAlias } from '../api/models';
import { CommandIDs } from '../commands';
import { IMlopsList, IModelVersionAction, IModelVersionActions } from '../tokens';
import { when } from '../format';

/** The registry of per-version actions, and a signal when it changes. */
export class ModelVersionActions implements IModelVersionActions {
  private _actions = new Map<string, IModelVersionAction>();
  readonly changed = new Signal<this, void>(this);

  add(action: IModelVersionAction): void {
    this._actions.set(action.id, action);
    this.changed.emit();
  }

  remove(id: string): void {
    this._actions.delete(id);
    this.changed.emit();
  }

  list(): IModelVersionAction[] {
    return [...this._actions.values()];
  }
}

export const modelVersionActions = new ModelVersionActions();

/** Emitted when a model was registered elsewhere (the run detail's "Register model"). */
class Changed {
  readonly signal = new Signal<this, void>(this);
  emit(): void {
    this.signal.emit();
  }
}
export const modelsChanged = new Changed();

function VersionRow(props: { version: IModelVersion; onChanged: () => void }): JSX.Element {
  const v = props.version;
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [openForm, setOpenForm] = useState<string | null>(null);
  const [, setTick] = useState(0);
  useEffect(() => {
    const bump = () => setTick(t => t + 1);
    modelVersionActions.changed.connect(bump);
    return () => void modelVersionActions.changed.disconnect(bump);
  }, []);
  const run = async (a: IModelVersionAction) => {
    if (a.render) {
      setOpenForm(openForm === a.id ? null : a.id);
      return;
    }
    try {
      const text = await a.execute?.(v);
      setMessage(text ? { ok: true, text } : null);
      props.onChanged();
    } catch (e: any) {
      setMessage({ ok: false, text: e.message ?? String(e) });
    }
  };
  return (
    <li className="jp-mlops-version" data-testid={`version-${v.name}-${v.version}`}>
      <div>
        <a className="jp-mlops-link" href={v.ui_url} target="_blank" rel="noopener noreferrer">
          v{v.version}
        </a>{' '}
        {v.aliases.map(a => (
          <span key={a} className="jp-mlops-chip jp-mlops-alias">
            @{a}
          </span>
        ))}
        <span className="jp-mlops-muted-inline">
          {' '}
          {v.status} · {when(v.creation_timestamp)}
        </span>
      </div>
      <div className="jp-mlops-muted-inline">
        run: {v.run_id ? <code title={v.source}>{v.run_id.slice(0, 12)}</code> : 'none'}
        {v.model_id && (
          <>
            {' · logged model: '}
            <code title={v.source}>{v.model_id}</code>
          </>
        )}
        {Object.entries(v.tags).map(([k, val]) => ` · ${k}=${val}`)}
      </div>
      <div className="jp-mlops-actions">
        {modelVersionActions
          .list()
          .filter(a => !a.isVisible || a.isVisible(v))
          .map(a => (
            <Button
              key={a.id}
              small
              title={a.caption}
              aria-pressed={a.render ? openForm === a.id : undefined}
              onClick={() => void run(a)}
            >
              {a.label}
            </Button>
          ))}
      </div>
      {openForm &&
        modelVersionActions
          .list()
          .filter(a => a.id === openForm && a.render)
          .map(a => (
            <React.Fragment key={a.id}>{a.render!(v, () => setOpenForm(null))}</React.Fragment>
          ))}
      {message && (
        <div
          className={message.ok ? 'jp-mlops-ok-text' : 'jp-mlops-error'}
          role={message.ok ? 'status' : 'alert'}
        >
          {message.text}
        </div>
      )}
    </li>
  );
}

function AliasForm(props: {
  model: string;
  versions: IModelVersion[];
  onChanged: () => void;
}): JSX.Element {
  const [alias, setAlias] = useState('champion');
  const [version, setVersion] = useState(props.versions[0]?.version ?? '');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    try {
      await pointAlias(props.model, alias.trim(), version);
      setError(null);
      props.onChanged();
    } catch (err: any) {
      setError(err.message);
    }
  };
  return (
    <form className="jp-mlops-inline-form" onSubmit={submit}>
      <InputGroup
        className="jp-mlops-input-group"
        aria-label={`Alias for ${props.model}`}
        value={alias}
        onChange={e => setAlias(e.target.value)}
      />
      <NameSelect
        label={`Version for the alias of ${props.model}`}
        value={version}
        options={props.versions.map(v => v.version)}
        describe={v => `v${v}`}
        onChange={setVersion}
      />
      <Button type="submit" small disabled={!alias.trim() || !version}>
        Set alias
      </Button>
      <ErrorLine error={error} />
    </form>
  );
}

function ModelItem(props: { model: IModel }): JSX.Element {
  const { model } = props;
  const [open, setOpen] = useState(false);
  const {
    data: versions,
    error,
    reload: load
  } = useRemote(async () => (await listVersions(model.name)).versions, [model.name], {
    auto: open
  });
  return (
    <li data-testid={`model-${model.name}`}>
      <a className="jp-mlops-link" href="#" onClick={e => (e.preventDefault(), setOpen(!open))}>
        {open ? '▾ ' : '▸ '}
        {model.name}
      </a>
      <span className="jp-mlops-muted-inline">
        {' '}
        v{model.latest_version ?? '–'}
        {Object.entries(model.aliases).map(([a, v]) => ` · @${a}→v${v}`)}
      </span>
      {open && (
        <div className="jp-mlops-model-body">
          <ErrorLine error={error} />
          {versions && versions.length > 0 && (
            <AliasForm model={model.name} versions={versions} onChanged={load} />
          )}
          <ul className="jp-mlops-list">
            {(versions ?? []).map(v => (
              <VersionRow key={v.version} version={v} onChanged={load} />
            ))}
          </ul>
        </div>
      )}
    </li>
  );
}

function ModelsList(props: { models: IMlopsList<IModel>; tick: number }): JSX.Element {
  const [tick, setTick] = useState(0);
  const {
    answer: models,
    error,
    reload: load
  } = usePolledList(props.models, `${props.tick}-${tick}`);
  useEffect(() => {
    const bump = () => setTick(t => t + 1);
    modelsChanged.signal.connect(bump);
    return () => void modelsChanged.signal.disconnect(bump);
  }, []);
  return (
    <div className="jp-mlops-models" data-testid="models-list">
      <SectionReload tooltip="Reload models" onClick={() => void load()} />
      <ErrorLine error={error} />
      {models?.length === 0 && (
        <div className="jp-mlops-muted">
          No registered models: open a run's artifacts to register one.
        </div>
      )}
      <ul className="jp-mlops-list">
        {(models ?? []).map(m => (
          <ModelItem key={`${m.name}-${tick}`} model={m} />
        ))}
      </ul>
    </div>
  );
}

export class ModelsPanel extends SidebarSection {
  constructor(models: IMlopsList<IModel>) {
    super('Models', tick => <ModelsList models={models} tick={tick} />);
  }
}

/** Add the Models section to the MLOps sidebar. */
export function registerModels(
  app: JupyterFrontEnd,
  sidebar: SidePanel,
  palette: ICommandPalette | null,
  models: IMlopsList<IModel>
): ModelsPanel {
  const panel = new ModelsPanel(models);
  sidebar.addWidget(panel);
  const command = CommandIDs.refreshModels;
  app.commands.addCommand(command, {
    label: 'MLOps: reload models',
    execute: () => panel.refresh()
  });
  palette?.addItem({ command, category: 'MLOps' });
  return panel;
}
