/**
 * Lineage as a small tree: from a dataset version down to the runs that used it, the model
 * versions registered from them and the deployments serving those; from a deployment (or a
 * model version) back up to the dataset versions. Each node opens its object: a dataset
 * version in the dataset browser, a run's experiment (or its job) in the lab, a model version
 * in MLflow, a deployment's own lineage. Answers of `.../lineage` (docs/openapi.yaml).
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Button } from '@jupyterlab/ui-components';
import React from 'react';

import { ErrorLine } from '../components/errorLine';
import { useRemote } from '../components/hooks';
import { openInMainArea } from '../components/mainArea';
import { getLineage, LineageSource, lineagePath } from '../api/lineage';
import { CommandIDs } from '../commands';

export type { LineageSource } from '../api/lineage';

interface IDeploymentNode {
  name: string;
  project: string;
  status: string;
  model_version?: string;
  serving?: boolean;
}

interface IRunNode {
  run_id: string;
  run_name: string;
  experiment_id: string;
  status: string | null;
  job_id?: string | null;
  user?: string;
  project: string | null;
  datasets?: { dataset: string; version: string }[];
  model_versions?: IModelVersionNode[];
}

interface IModelVersionNode {
  name: string;
  version: string;
  project?: string | null;
  serving?: boolean;
  hidden?: boolean;
  run?: IRunNode | null;
  deployments?: IDeploymentNode[];
}

let lineageApp: JupyterFrontEnd | null = null;

/** The lab the nodes open their objects in (set once by the plugin). */
export function setLineageApp(app: JupyterFrontEnd): void {
  lineageApp = app;
}

/** Open the lineage of `source` in its own main-area tab. */
export function openLineage(source: LineageSource): void {
  if (!lineageApp) {
    return;
  }
  const label =
    source.kind === 'deployment'
      ? source.name
      : `${source.name}${source.kind === 'dataset' ? '@' : ' v'}${source.version}`;
  openInMainArea(
    lineageApp,
    `jp-mlops-lineage-${source.kind}-${label.replace(/[^A-Za-z0-9_.@-]/g, '_')}`,
    `Lineage: ${label}`,
    <div className="jp-mlops-lineage-page">
      <LineageView source={source} />
    </div>
  );
}

function Node(props: {
  kind: string;
  label: string;
  detail?: string;
  onOpen?: () => void;
  title?: string;
  children?: React.ReactNode;
}): JSX.Element {
  return (
    <li
      className={`jp-mlops-lineage-node jp-mlops-lineage-${props.kind.replace(/ /g, '-')}`}
      data-kind={props.kind}
    >
      <span className="jp-mlops-lineage-kind">{props.kind}</span>
      {props.onOpen ? (
        <a
          className="jp-mlops-link"
          href="#"
          title={props.title}
          onClick={e => {
            e.preventDefault();
            props.onOpen?.();
          }}
        >
          {props.label}
        </a>
      ) : (
        <span>{props.label}</span>
      )}
      {props.detail && <span className="jp-mlops-muted-inline"> {props.detail}</span>}
      {props.children && <ul>{props.children}</ul>}
    </li>
  );
}

function openDataset(dataset: string, version: string): void {
  void lineageApp?.commands.execute(CommandIDs.openDatasets, { name: dataset, version });
}

function mlflowModelVersion(name: string, version: string): void {
  window.open(
    `${window.location.origin}/services/mlflow/#/models/${encodeURIComponent(name)}/versions/${version}`,
    '_blank',
    'noopener'
  );
}

function DeploymentLeaf(props: { d: IDeploymentNode }): JSX.Element {
  const { d } = props;
  return (
    <Node
      kind="deployment"
      label={d.name}
      detail={`${d.status}${d.serving ? ', serving it' : ''} · ${d.project}`}
      title="Open the deployment's lineage"
      onOpen={() => openLineage({ kind: 'deployment', name: d.name })}
    />
  );
}

function RunNode(props: { run: IRunNode; children?: React.ReactNode }): JSX.Element {
  const { run } = props;
  const who = [run.user, run.status?.toLowerCase(), run.project].filter(Boolean).join(' · ');
  return (
    <Node
      kind="run"
      label={run.run_name || run.run_id.slice(0, 8)}
      detail={`${who}${run.job_id ? ` · job #${run.job_id}` : ''}`}
      title={run.job_id ? 'Open the job' : "Open the run's experiment"}
      onOpen={() =>
        run.job_id
          ? void lineageApp?.commands.execute(CommandIDs.openJob, { id: Number(run.job_id) })
          : void lineageApp?.commands.execute(CommandIDs.openExperiment, {
              experimentId: run.experiment_id
            })
      }
    >
      {props.children}
    </Node>
  );
}

function ModelVersionNode(props: {
  mv: IModelVersionNode;
  children?: React.ReactNode;
}): JSX.Element {
  const { mv } = props;
  const detail = [
    mv.serving ? 'serving' : '',
    mv.project || '',
    mv.hidden ? 'its run is in a project you are not in' : ''
  ]
    .filter(Boolean)
    .join(' · ');
  return (
    <Node
      kind="model version"
      label={`${mv.name} v${mv.version}`}
      detail={detail}
      title="Open the model version in MLflow"
      onOpen={() => mlflowModelVersion(mv.name, mv.version)}
    >
      {props.children}
    </Node>
  );
}

/** Upstream of one model version: its run, then the run's dataset versions. */
function Upstream(props: { mv: IModelVersionNode }): JSX.Element {
  const run = props.mv.run;
  return (
    <ModelVersionNode mv={props.mv}>
      {run ? (
        <RunNode run={run}>
          {(run.datasets ?? []).length === 0 ? (
            <li className="jp-mlops-muted">no dataset version recorded for this run</li>
          ) : (
            run.datasets?.map(d => (
              <Node
                key={`${d.dataset}@${d.version}`}
                kind="dataset version"
                label={`${d.dataset}@${d.version}`}
                title="Open the version in the dataset browser"
                onOpen={() => openDataset(d.dataset, d.version)}
              />
            ))
          )}
        </RunNode>
      ) : (
        !props.mv.hidden && <li className="jp-mlops-muted">no run you may see</li>
      )}
    </ModelVersionNode>
  );
}

/** The lineage tree of one dataset version, deployment or model version. */
export function LineageView(props: { source: LineageSource }): JSX.Element {
  const { source } = props;
  const key = lineagePath(source);
  const { data, error, reload } = useRemote(() => getLineage(source), [key]);
  let tree: JSX.Element | null = null;
  if (data && source.kind === 'dataset') {
    const runs: IRunNode[] = data.runs;
    tree = (
      <Node kind="dataset version" label={`${data.dataset}@${data.version}`}>
        {runs.length === 0 && (
          <li className="jp-mlops-muted">
            No run you may see used this version yet (<code>datasets.get</code> in a run, or a job's
            dataset version, records it).
          </li>
        )}
        {runs.map(run => (
          <RunNode key={run.run_id} run={run}>
            {(run.model_versions ?? []).map(mv => (
              <ModelVersionNode key={`${mv.name}/${mv.version}`} mv={mv}>
                {(mv.deployments ?? []).map(d => (
                  <DeploymentLeaf key={d.name} d={d} />
                ))}
              </ModelVersionNode>
            ))}
          </RunNode>
        ))}
        {data.truncated && <li className="jp-mlops-muted">the newest 200 runs are shown</li>}
      </Node>
    );
  } else if (data && source.kind === 'deployment') {
    const d: IDeploymentNode = data.deployment;
    tree = (
      <Node kind="deployment" label={d.name} detail={`${d.status} · ${d.project}`}>
        {(data.model_versions as IModelVersionNode[]).map(mv => (
          <Upstream key={mv.version} mv={mv} />
        ))}
      </Node>
    );
  } else if (data) {
    const mv: IModelVersionNode = data.model_version;
    tree = (
      <>
        <Upstream mv={mv} />
        {(mv.deployments ?? []).map(d => (
          <DeploymentLeaf key={d.name} d={d} />
        ))}
      </>
    );
  }
  return (
    <div className="jp-mlops-lineage" data-testid="lineage">
      <div className="jp-mlops-row-plain">
        <span className="jp-mlops-muted-inline">
          {source.kind === 'dataset'
            ? 'Runs that used this version, the model versions registered from them, the deployments serving those.'
            : 'Back to the dataset versions its run used.'}
        </span>{' '}
        <Button small minimal onClick={() => void reload()}>
          Reload
        </Button>
      </div>
      <ErrorLine error={error} />
      {!data && !error && <div className="jp-mlops-muted">Loading lineage…</div>}
      {tree && <ul className="jp-mlops-lineage-tree">{tree}</ul>}
    </div>
  );
}
