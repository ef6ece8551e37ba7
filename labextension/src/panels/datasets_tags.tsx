import { Button, InputGroup } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { NameSelect } from '../components/fields';
import { setReference, setTag as pointTag } from '../api/datasets';
import { listProjects } from '../api/projects';

/**
 * Names that move (tags such as "latest" or "reviewed") and a project's reference version,
 * for the version chosen in the datasets panel. Versions themselves never change.
 */
export function VersionTags(props: {
  dataset: string;
  version: string;
  /** tag -> version of the dataset */
  tags: Record<string, string>;
  /** projects whose reference version is a version of this dataset */
  referencedBy: string[];
  onChanged: () => void;
}): JSX.Element {
  const { dataset, version } = props;
  const [tag, setTag] = useState('latest');
  const [projects, setProjects] = useState<string[]>([]);
  const [project, setProject] = useState('');
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    listProjects()
      .then(r => {
        const names = r.projects.map(p => p.name);
        setProjects(names);
        setProject(p => p || names[0] || '');
      })
      .catch(e => setError(e.message));
  }, []);

  const act = async (what: () => Promise<string>) => {
    setBusy(true);
    setError(null);
    setMessage(null);
    try {
      setMessage(await what());
      props.onChanged();
    } catch (e: any) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  const moveTag = () =>
    act(async () => {
      const name = tag.trim();
      await pointTag(dataset, name, version);
      return `Tag “${name}” now points at ${version}.`;
    });
  const markReference = () =>
    act(async () => {
      await setReference(dataset, version, project);
      return `${dataset}@${version} is now the reference version of project ${project}.`;
    });

  const tagRows = Object.entries(props.tags).sort(([a], [b]) => a.localeCompare(b));
  return (
    <div className="jp-mlops-ds-tags" data-testid="dataset-tags">
      <div className="jp-mlops-ds-taglist" aria-label="Tags">
        {tagRows.map(([t, v]) => (
          <span key={t} className={`jp-mlops-ds-tag${v === version ? ' jp-mod-current' : ''}`}>
            {t} → {v}
          </span>
        ))}
      </div>
      <form className="jp-mlops-ds-toolbar" onSubmit={e => e.preventDefault()}>
        <label>
          Tag
          <InputGroup
            className="jp-mlops-input-group"
            value={tag}
            onChange={e => setTag(e.target.value)}
            list="jp-mlops-ds-known-tags"
            aria-label="Tag name"
            size={12}
          />
        </label>
        <datalist id="jp-mlops-ds-known-tags">
          {tagRows.map(([t]) => (
            <option key={t} value={t} />
          ))}
        </datalist>
        <Button type="submit" disabled={busy || !tag.trim() || !version} onClick={moveTag}>
          Move to {version}
        </Button>
      </form>
      <form className="jp-mlops-ds-toolbar" onSubmit={e => e.preventDefault()}>
        <label>
          Project
          <NameSelect
            label="Reference project"
            value={project}
            options={projects}
            onChange={setProject}
          />
        </label>
        <Button disabled={busy || !project || !version} onClick={markReference}>
          Mark {version} as reference
        </Button>
      </form>
      <div className="jp-mlops-ds-refs">
        Reference dataset of:{' '}
        {props.referencedBy.length ? props.referencedBy.join(', ') : 'no project yet'}
      </div>
      {message && (
        <div className="jp-mlops-ds-done" role="status">
          {message}
        </div>
      )}
      <ErrorLine error={error} />
    </div>
  );
}
