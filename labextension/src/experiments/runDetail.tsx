/**
 * One run: params, metrics, tags, dataset inputs, git commit, its models (MLflow 3 logged
 * models and directories holding an MLmodel file, each with "Register model") and its
 * artifacts with inline previews of images and text.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ServerConnection } from '@jupyterlab/services';
import { Button, InputGroup } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { openInMainArea } from '../components/mainArea';
import { JobResources } from '../panels/job_resources';
import { modelsChanged } from '../panels/models';
import { artifactUrl, getRun, IArtifact, IRunDetail, listArtifacts } from '../api/experiments';
import { ILoggedModel, registerModel } from '../api/models';
import { num, when } from '../format';
import { RunDetections } from './detections';

const IMAGE = /\.(png|jpe?g|gif|svg|webp|bmp)$/i;
const TEXT = /(\.(txt|log|json|ya?ml|md|csv|tsv|py|diff|cfg|ini|toml)|MLmodel|requirements\.txt)$/i;

function KeyValues(props: { title: string; data: { [k: string]: string | number } }): JSX.Element {
  const keys = Object.keys(props.data).sort();
  return (
    <section className="jp-mlops-kv">
      <h3>
        {props.title} ({keys.length})
      </h3>
      {keys.length === 0 ? (
        <div className="jp-mlops-muted">none</div>
      ) : (
        <table className="jp-mlops-table">
          <tbody>
            {keys.map(k => (
              <tr key={k}>
                <th scope="row">{k}</th>
                <td>
                  {typeof props.data[k] === 'number' ? num(props.data[k] as number) : props.data[k]}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** Inline preview of one artifact, fetched with the lab's own credentials. */
function Preview(props: { runId: string; file: IArtifact }): JSX.Element {
  const { runId, file } = props;
  const [content, setContent] = useState<{ text?: string; url?: string; error?: string }>({});
  useEffect(() => {
    let url: string | undefined;
    const settings = ServerConnection.makeSettings();
    const full = artifactUrl(runId, file.path);
    void ServerConnection.makeRequest(full, {}, settings)
      .then(async resp => {
        if (!resp.ok) {
          const body = await resp.json().catch(() => ({}));
          setContent({ error: body.message ?? `${resp.status} ${resp.statusText}` });
        } else if (IMAGE.test(file.path)) {
          url = URL.createObjectURL(await resp.blob());
          setContent({ url });
        } else {
          setContent({ text: (await resp.text()).slice(0, 200000) });
        }
      })
      .catch(e => setContent({ error: String(e) }));
    return () => {
      if (url) {
        URL.revokeObjectURL(url);
      }
    };
  }, [runId, file.path]);
  if (content.error) {
    return <ErrorLine error={content.error} />;
  }
  if (content.url) {
    return <img className="jp-mlops-preview-img" src={content.url} alt={file.path} />;
  }
  if (content.text !== undefined) {
    return <pre className="jp-mlops-preview-text">{content.text}</pre>;
  }
  return <div className="jp-mlops-muted">Loading {file.path}…</div>;
}

function RegisterForm(props: {
  runId: string;
  from: { path?: string; modelId?: string };
  label: string;
}): JSX.Element {
  const [name, setName] = useState('');
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    try {
      const v = await registerModel(props.runId, props.from, name.trim());
      setMessage({ ok: true, text: `Registered ${v.name} version ${v.version}` });
      modelsChanged.emit();
    } catch (err: any) {
      setMessage({ ok: false, text: err.message });
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="jp-mlops-inline-form" onSubmit={submit}>
      <InputGroup
        className="jp-mlops-input-group"
        aria-label={`Model name for ${props.label}`}
        placeholder="registered model name"
        value={name}
        onChange={e => setName(e.target.value)}
      />
      <Button type="submit" small disabled={busy || !name.trim()}>
        Register model
      </Button>
      {message && (
        <span
          className={message.ok ? 'jp-mlops-ok-text' : 'jp-mlops-error'}
          role={message.ok ? 'status' : 'alert'}
        >
          {message.text}
        </span>
      )}
    </form>
  );
}

/** What of the run can be registered: its logged models, then its model directories. */
function RunModels(props: { run: IRunDetail }): JSX.Element {
  const { run } = props;
  const count = run.logged_models.length + run.model_artifacts.length;
  const registered = (m: ILoggedModel) =>
    m.registrations.map(r => `${r.name} v${r.version}`).join(', ');
  return (
    <section className="jp-mlops-kv" data-testid="run-models">
      <h3>Models ({count})</h3>
      {count === 0 && (
        <div className="jp-mlops-muted">
          none logged: <code>mlflow.sklearn.log_model(model, name="model")</code> inside the run
          logs one
        </div>
      )}
      <ul className="jp-mlops-models">
        {run.logged_models.map(m => (
          <li key={m.model_id} data-testid="logged-model">
            <div>
              <strong>{m.name}</strong> <span className="jp-mlops-chip">logged model</span>{' '}
              <code title="logged model id">{m.model_id}</code>{' '}
              <a
                className="jp-mlops-link"
                href={m.ui_url}
                target="_blank"
                rel="noopener noreferrer"
              >
                MLflow ↗
              </a>
            </div>
            {m.registrations.length > 0 && (
              <div className="jp-mlops-muted-inline">registered as {registered(m)}</div>
            )}
            <RegisterForm runId={run.run_id} from={{ modelId: m.model_id }} label={m.name} />
          </li>
        ))}
        {run.model_artifacts.map(path => (
          <li key={`dir:${path}`} data-testid="model-artifact">
            <div>
              <strong>{path || '(artifact root)'}</strong>{' '}
              <span className="jp-mlops-chip">model directory</span>
            </div>
            <RegisterForm runId={run.run_id} from={{ path }} label={path || 'the artifact root'} />
          </li>
        ))}
      </ul>
    </section>
  );
}

function ArtifactTree(props: {
  runId: string;
  files: IArtifact[];
  /** Model directories the Models section offers already. */
  listed?: Set<string>;
}): JSX.Element {
  const { runId } = props;
  const [open, setOpen] = useState<{ [path: string]: IArtifact[] | 'preview' | string }>({});
  const toggle = async (f: IArtifact) => {
    if (open[f.path]) {
      const { [f.path]: _, ...rest } = open;
      setOpen(rest);
      return;
    }
    if (!f.is_dir) {
      setOpen({ ...open, [f.path]: 'preview' });
      return;
    }
    try {
      setOpen({ ...open, [f.path]: (await listArtifacts(runId, f.path)).files });
    } catch (e: any) {
      setOpen({ ...open, [f.path]: e.message });
    }
  };
  return (
    <ul className="jp-mlops-tree">
      {props.files.map(f => {
        const state = open[f.path];
        const children = Array.isArray(state) ? state : null;
        const isModel = children?.some(c => !c.is_dir && c.path.split('/').pop() === 'MLmodel');
        return (
          <li key={f.path}>
            <a
              className="jp-mlops-link"
              href="#"
              onClick={e => (e.preventDefault(), void toggle(f))}
            >
              {f.is_dir ? (state ? '▾ ' : '▸ ') : ''}
              {f.path.split('/').pop()}
            </a>
            {!f.is_dir && f.file_size !== undefined && (
              <span className="jp-mlops-muted-inline"> {Math.ceil(f.file_size / 1024)} KB</span>
            )}
            {state === 'preview' && (IMAGE.test(f.path) || TEXT.test(f.path)) && (
              <Preview runId={runId} file={f} />
            )}
            {state === 'preview' && !IMAGE.test(f.path) && !TEXT.test(f.path) && (
              <div className="jp-mlops-muted">
                No preview for this type; open the run in MLflow.
              </div>
            )}
            {typeof state === 'string' && state !== 'preview' && <ErrorLine error={state} />}
            {isModel && !props.listed?.has(f.path) && (
              <RegisterForm runId={runId} from={{ path: f.path }} label={f.path} />
            )}
            {children && <ArtifactTree runId={runId} files={children} listed={props.listed} />}
          </li>
        );
      })}
    </ul>
  );
}

export function RunDetail(props: { runId: string }): JSX.Element {
  const [run, setRun] = useState<IRunDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let current = true; // a late answer for the run shown before must not replace this one
    setRun(null);
    getRun(props.runId).then(
      r => current && setRun(r),
      e => current && setError(e.message)
    );
    return () => {
      current = false;
    };
  }, [props.runId]);
  if (error) {
    return <ErrorLine error={error} />;
  }
  if (!run) {
    return <div className="jp-mlops-muted">Loading run…</div>;
  }
  const tags = Object.fromEntries(
    Object.entries(run.tags).filter(([k]) => !k.startsWith('mlflow.log-model'))
  );
  return (
    <div className="jp-mlops-run-detail" data-testid="run-detail">
      <h2>
        {run.run_name || run.run_id}{' '}
        <a className="jp-mlops-link" href={run.ui_url} target="_blank" rel="noopener noreferrer">
          Open in MLflow ↗
        </a>
      </h2>
      <div className="jp-mlops-muted-inline">
        {run.status} · {when(run.start_time)} · {run.user} · <code>{run.run_id}</code>
      </div>
      <section className="jp-mlops-kv">
        <h3>Reproducibility</h3>
        <div>
          git commit: <code>{run.git.commit ?? 'not recorded'}</code>
          {run.git.branch ? ` on ${run.git.branch}` : ''}
          {run.git.dirty === 'true' ? ' (uncommitted changes: see reproducibility/git.diff)' : ''}
        </div>
        <div>
          datasets:{' '}
          {run.inputs.length === 0
            ? 'none recorded'
            : run.inputs.map(d => `${d.name} (${d.digest.slice(0, 12)})`).join(', ')}
        </div>
      </section>
      <div className="jp-mlops-columns-2">
        <KeyValues title="Parameters" data={run.params} />
        <KeyValues title="Metrics (latest)" data={run.metrics} />
      </div>
      <section className="jp-mlops-kv">
        <h3>Resources</h3>
        {/* the system metrics a job, a trial or a notebook run sampled, as the job view charts them */}
        <JobResources runId={run.run_id} running={run.status === 'RUNNING'} />
      </section>
      {/* boxes and the error gallery, when the run logged eval/detections.json */}
      <RunDetections
        run={{
          runId: run.run_id,
          label: run.run_name || run.run_id.slice(0, 8),
          metrics: run.metrics
        }}
      />
      <RunModels run={run} />
      <KeyValues title="Tags" data={tags} />
      <section className="jp-mlops-kv">
        <h3>Artifacts</h3>
        {run.artifacts.length === 0 ? (
          <div className="jp-mlops-muted">
            none
            {run.logged_models.length > 0
              ? ' (logged models keep their files with the model: see Models)'
              : ''}
          </div>
        ) : (
          <ArtifactTree
            runId={run.run_id}
            files={run.artifacts}
            listed={new Set(run.model_artifacts)}
          />
        )}
      </section>
    </div>
  );
}

/** Open a run in a main-area tab of its own, or bring its tab forward (one tab per run). */
export function openRunDetail(app: JupyterFrontEnd, runId: string, name?: string): void {
  openInMainArea(
    app,
    `jp-mlops-run-${runId}`,
    `Run: ${name || runId.slice(0, 8)}`,
    <div className="jp-mlops-explorer jp-mlops-run-tab" data-run={runId}>
      <RunDetail runId={runId} />
    </div>
  );
}
