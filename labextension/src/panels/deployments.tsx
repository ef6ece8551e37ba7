import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog } from '@jupyterlab/apputils';
import { Button, HTMLSelect, InputGroup, SidePanel } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { NameSelect } from '../components/fields';
import { usePolledList } from '../components/hooks';
import { SidebarSection } from '../components/sidebarSection';
import {
  approveDeployment,
  createDeployment,
  createToken,
  deleteDeployment,
  getDeployment,
  IDeployment,
  rejectDeployment,
  updateDeployment
} from '../api/deployments';
import { IModel, listVersions } from '../api/models';
import { CommandIDs } from '../commands';
import { IMlopsList, IMlopsModel } from '../tokens';
import { BatchPredictForm } from './batch_predict';
import { modelVersionActions } from './models';
import { TryIt } from './deployment_try';
import { openDeploymentMonitor } from './deployment_monitor';
import { openLineage } from './lineage';
import { openDeploymentDetail } from '../views/deploymentDetail';

/** The application, for opening a deployment and its monitoring view in the main area. */
let monitorApp: JupyterFrontEnd | null = null;

/** Ask the control plane to deploy a model version (also used by the Models panel). */
export async function deployModelVersion(
  modelName: string,
  version: string,
  options: { name?: string; project?: string; visibility?: string } = {}
): Promise<IDeployment> {
  const name =
    options.name ||
    modelName
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^[^a-z]+/, '')
      .slice(0, 40)
      .replace(/-+$/, '') ||
    'model';
  return createDeployment({
    name,
    model_name: modelName,
    version,
    project: options.project || 'default',
    visibility: options.visibility || 'project'
  });
}

function statusClass(d: IDeployment): string {
  if (d.status === 'ready') {
    return 'jp-mlops-ok';
  }
  if (d.status === 'failed') {
    return d.serving_version ? 'jp-mlops-warn' : 'jp-mlops-bad';
  }
  if (d.status === 'restarting') {
    return 'jp-mlops-bad';
  }
  if (d.status === 'unresponsive') {
    return 'jp-mlops-warn';
  }
  return 'jp-mlops-busy';
}

/** The status line's words: the server's own state while it does not answer. */
function statusText(d: IDeployment): string {
  const unwell = d.server && d.server.state !== 'running';
  return unwell ? d.server!.summary : d.status;
}

/** What the supervisor says about the serving server, when there is something to say. */
function ServerHealth(props: { dep: IDeployment }): JSX.Element | null {
  const server = props.dep.server;
  if (!server || (server.state === 'running' && server.restarts === 0)) {
    return null;
  }
  const restarted = server.restarts
    ? ` · restarted ${server.restarts} time${server.restarts === 1 ? '' : 's'}`
    : '';
  const next =
    server.next_attempt_at !== null
      ? ` · next attempt in ${Math.max(0, Math.round(server.next_attempt_at - Date.now() / 1000))} s`
      : '';
  return (
    <div className="jp-mlops-row-plain" data-testid="server-health" data-state={server.state}>
      <span className="jp-mlops-label">Server</span> {server.summary}
      {restarted}
      {next}
    </div>
  );
}

function Details(props: { dep: IDeployment; onChange: () => void }): JSX.Element {
  const { dep, onChange } = props;
  const [detail, setDetail] = useState<IDeployment | null>(null);
  const [versions, setVersions] = useState<string[]>([]);
  const [target, setTarget] = useState('');
  const [token, setToken] = useState<string | null>(null);
  const [note, setNote] = useState('');
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let current = true; // answers can arrive out of order: only the newest status counts
    void getDeployment(dep.name)
      .then(d => current && setDetail(d))
      .catch(e => current && setError(e.message));
    return () => {
      current = false;
    };
  }, [dep.name, dep.status, dep.serving_version]);
  useEffect(() => {
    let current = true;
    void listVersions(dep.model_name)
      .then(r => current && setVersions(r.versions.map(v => String(v.version))))
      .catch(() => current && setVersions([]));
    return () => {
      current = false;
    };
  }, [dep.model_name]);

  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try {
      await fn();
      onChange();
    } catch (e: any) {
      setError(e.message);
    }
  };
  const endpointUrl = `${window.location.origin}/services/mlops/${dep.endpoint}`;
  return (
    <div className="jp-mlops-deployment-details">
      <ErrorLine error={error} />
      {dep.message && <div className="jp-mlops-muted">{dep.message}</div>}
      <ServerHealth dep={dep} />
      {monitorApp && (
        <div className="jp-mlops-row-plain">
          <Button small onClick={() => monitorApp && openDeploymentMonitor(monitorApp, dep.name)}>
            Monitoring
          </Button>{' '}
          <span className="jp-mlops-muted-inline">
            traffic, latency, errors and drift over time
          </span>
        </div>
      )}
      <div className="jp-mlops-row-plain">
        <Button small onClick={() => openLineage({ kind: 'deployment', name: dep.name })}>
          Lineage
        </Button>{' '}
        <span className="jp-mlops-muted-inline">
          the model version's run and the dataset versions it used
        </span>
      </div>
      {dep.status === 'pending_approval' && (
        <div className="jp-mlops-row-plain" data-testid="approval">
          Version {dep.model_version} waits for a project manager's approval
          {dep.serving_version ? ` (version ${dep.serving_version} keeps serving)` : ''}.{' '}
          {dep.can_approve && (
            <>
              <Button small onClick={() => void act(() => approveDeployment(dep.name))}>
                Approve
              </Button>{' '}
              <Button
                small
                onClick={() => void act(() => rejectDeployment(dep.name, 'rejected in the lab'))}
              >
                Reject
              </Button>
            </>
          )}
        </div>
      )}
      {dep.log && (
        <pre className="jp-mlops-pre" aria-label="model server log">
          {dep.log}
        </pre>
      )}
      <div className="jp-mlops-row-plain">
        <span className="jp-mlops-label">Endpoint</span> <code>{endpointUrl}</code>
      </div>
      <div className="jp-mlops-row-plain">
        <span className="jp-mlops-label">Switch to version</span>{' '}
        <NameSelect
          label="version to serve"
          value={target}
          placeholder="choose…"
          options={versions}
          describe={v => `${v}${v === dep.serving_version ? ' (serving)' : ''}`}
          onChange={setTarget}
        />{' '}
        <Button
          small
          disabled={!target}
          onClick={() => void act(() => updateDeployment(dep.name, target))}
        >
          Switch
        </Button>
      </div>
      <TryIt name={dep.name} />
      <div className="jp-mlops-row-plain">
        <InputGroup
          className="jp-mlops-input-group"
          placeholder="token note, e.g. cell counter"
          aria-label="token note"
          value={note}
          onChange={e => setNote(e.target.value)}
        />{' '}
        <Button
          small
          onClick={() =>
            void act(async () => {
              const t = await createToken(dep.name, note);
              setToken(t.token);
            })
          }
        >
          Create client token
        </Button>
      </div>
      {token && (
        <div className="jp-mlops-token" data-testid="client-token">
          Shown once — send as <code>Authorization: Bearer …</code>: <code>{token}</code>
        </div>
      )}
      {detail?.events && (
        <details className="jp-mlops-events">
          <summary>Audit log ({detail.events.length})</summary>
          <ul>
            {detail.events.map((e, i) => (
              <li key={i}>
                {new Date(e.at * 1000).toLocaleString()} · {e.actor} · {e.action}
                {e.model_version ? ` v${e.model_version}` : ''}
                {e.detail ? ` — ${e.detail}` : ''}
              </li>
            ))}
          </ul>
        </details>
      )}
      <Button
        small
        className="jp-mlops-danger"
        onClick={async () => {
          const answer = await showDialog({
            title: `Undeploy ${dep.name}?`,
            body: 'Its endpoint stops answering; the audit log stays.',
            buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Undeploy' })]
          });
          if (answer.button.accept) {
            await act(() => deleteDeployment(dep.name));
          }
        }}
      >
        Undeploy
      </Button>
    </div>
  );
}

function NewDeployment(props: { models: IMlopsList<IModel>; onDone: () => void }): JSX.Element {
  // the Models section's list: both show the same models
  const registered = usePolledList(props.models);
  const models = registered.items.map(m => m.name);
  const [model, setModel] = useState('');
  const [versions, setVersions] = useState<string[]>([]);
  const [version, setVersion] = useState('');
  const [name, setName] = useState('');
  const [visibility, setVisibility] = useState('project');
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let current = true; // until another model is chosen: its versions are not this one's
    setVersions([]);
    setVersion('');
    if (model) {
      void listVersions(model)
        .then(r => {
          if (current) {
            const vs = r.versions.map(v => String(v.version));
            setVersions(vs);
            setVersion(vs[0] || '');
          }
        })
        .catch(e => current && setError(e.message));
    }
    return () => {
      current = false;
    };
  }, [model]);

  return (
    <form
      className="jp-mlops-deploy-form"
      aria-label="Deploy a model version"
      onSubmit={async e => {
        e.preventDefault();
        setError(null);
        try {
          await deployModelVersion(model, version, { name, visibility });
          setName('');
          props.onDone();
        } catch (err: any) {
          setError(err.message);
        }
      }}
    >
      <NameSelect
        label="registered model"
        value={model}
        placeholder="model…"
        options={models}
        onChange={setModel}
      />
      {model && (
        // only once a model is chosen: before that it would be an empty, unexplained choice
        <NameSelect
          label="model version"
          value={version}
          options={versions}
          describe={v => `v${v}`}
          onChange={setVersion}
        />
      )}
      <InputGroup
        className="jp-mlops-input-group"
        aria-label="deployment name"
        placeholder="name (URL)"
        value={name}
        onChange={e => setName(e.target.value)}
      />
      <HTMLSelect
        className="jp-mlops-select"
        aria-label="who may call it"
        value={visibility}
        onChange={e => setVisibility(e.target.value)}
      >
        <option value="project">project members</option>
        <option value="lab">whole lab</option>
      </HTMLSelect>
      <Button type="submit" small disabled={!model || !version}>
        Deploy
      </Button>
      <ErrorLine error={error ?? registered.error} />
    </form>
  );
}

/** A deployment in one line: status dot, name, model version, status, replicas and traffic. */
function DeploymentLine(props: { d: IDeployment }): JSX.Element {
  const { d } = props;
  return (
    <>
      <span className={`jp-mlops-dot ${statusClass(d)}`} aria-hidden="true" />
      <strong>{d.name}</strong>
      <span className="jp-mlops-muted">
        {' '}
        {d.model_name} v{d.serving_version ?? d.model_version} · {statusText(d)}
      </span>
      <span className="jp-mlops-deployment-stats">
        {d.replicas} replica{d.replicas === 1 ? '' : 's'} · {d.traffic.requests_per_s.toFixed(2)}{' '}
        req/s
        {d.traffic.p50_ms !== null ? ` · p50 ${d.traffic.p50_ms} ms` : ''}
      </span>
    </>
  );
}

/**
 * Deployments: registered model versions served as REST endpoints behind the hub. The list
 * navigates: a deployment opens in a main-area tab of its own with its details and actions.
 */
export function DeploymentsView(props: {
  model: IMlopsModel;
  refreshSignal?: number;
}): JSX.Element {
  const {
    answer: deps,
    error,
    reload: refresh
  } = usePolledList(props.model.deployments, props.refreshSignal);
  const open = (d: IDeployment) =>
    monitorApp &&
    openDeploymentDetail(
      monitorApp,
      d.name,
      (dep, onChange) => (
        <>
          <h2 className="jp-mlops-deployment-title">
            <DeploymentLine d={dep} />
          </h2>
          <Details dep={dep} onChange={onChange} />
        </>
      ),
      () => void refresh()
    );

  return (
    <div className="jp-mlops-deployments">
      <NewDeployment models={props.model.models} onDone={() => void refresh()} />
      <ErrorLine error={error} />
      {deps && deps.length === 0 && <div className="jp-mlops-muted">No deployments yet.</div>}
      <ul aria-label="Deployments" className="jp-mlops-deployment-list">
        {(deps || []).map(d => (
          <li key={d.name} data-testid={`deployment-${d.name}`} data-status={d.status}>
            <Button
              minimal
              className="jp-mlops-deployment-head"
              title={`Open ${d.name} in a tab`}
              onClick={() => open(d)}
            >
              <DeploymentLine d={d} />
            </Button>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** The deployments section of the MLOps sidebar. */
export class DeploymentsPanel extends SidebarSection {
  constructor(model: IMlopsModel) {
    super('Deployments', tick => <DeploymentsView model={model} refreshSignal={tick} />);
  }
}

/**
 * Add the Deployments section to the MLOps sidebar and a "Deploy" button to every model
 * version of the Models panel.
 */
export function registerDeployments(
  app: JupyterFrontEnd,
  sidebar: SidePanel,
  palette: ICommandPalette | null,
  model: IMlopsModel
): DeploymentsPanel {
  const panel = new DeploymentsPanel(model);
  sidebar.addWidget(panel);
  monitorApp = app;
  modelVersionActions.add({
    id: 'deploy',
    label: 'Deploy',
    caption: 'Serve this version as a REST endpoint behind the hub',
    execute: async version => {
      let dep: IDeployment;
      try {
        dep = await deployModelVersion(version.name, String(version.version));
      } catch (e: any) {
        if (e.status !== 409) {
          throw e;
        }
        // The model's name is taken by another deployment: name this one after the version.
        const base = version.name.toLowerCase().replace(/[^a-z0-9-]+/g, '-');
        dep = await deployModelVersion(version.name, String(version.version), {
          name: `${base}-v${version.version}`.replace(/^[^a-z]+/, '').slice(0, 40)
        });
      }
      void model.deployments.refresh();
      return `Deploying as ${dep.name}: see the Deployments section`;
    }
  });
  modelVersionActions.add({
    id: 'batch-predict',
    label: 'Batch predict…',
    caption: 'Predict every image and CSV file of a dataset version, as a job',
    render: (version, close) => <BatchPredictForm app={app} version={version} onClose={close} />
  });
  app.commands.addCommand(CommandIDs.refreshDeployments, {
    label: 'MLOps: refresh deployments',
    execute: () => panel.refresh()
  });
  palette?.addItem({ command: CommandIDs.refreshDeployments, category: 'MLOps' });
  return panel;
}
