/**
 * Shapes and calls of the experiments and models routes (docs/openapi.yaml, tag "experiments").
 */
import { requestAPI } from '../request';

/** An MLflow experiment with the project it belongs to. */
export interface IExperiment {
  experiment_id: string;
  name: string;
  /** The project (experiment tag `mlops.project`; `default` when untagged). */
  project: string;
  lifecycle_stage: string;
  last_update_time?: number;
  ui_url: string;
}

/** One row of the runs table. */
export interface IRunSummary {
  run_id: string;
  run_name: string;
  experiment_id: string;
  status: string;
  start_time?: number;
  end_time?: number | null;
  user: string;
  metrics: { [key: string]: number };
  params: { [key: string]: string };
  /** The same run in the MLflow UI. */
  ui_url?: string;
}

/** One page of runs (server-side paging with MLflow's page tokens). */
export interface IRunsPage {
  runs: IRunSummary[];
  next_page_token: string | null;
  metric_keys: string[];
  param_keys: string[];
}

/** An artifact file or directory of a run. */
export interface IArtifact {
  path: string;
  is_dir: boolean;
  file_size?: number;
}

/** A run's detail. */
export interface IRunDetail extends IRunSummary {
  tags: { [key: string]: string };
  artifact_uri: string;
  git: { commit?: string; repo?: string; branch?: string; dirty?: string };
  inputs: {
    name: string;
    digest: string;
    source_type: string;
    source: string;
    context?: string;
  }[];
  artifacts: IArtifact[];
  /** MLflow 3 logged models of the run (`log_model(..., name=...)`). */
  logged_models: ILoggedModel[];
  /** Artifact directories holding an MLmodel file (`''`: the root). */
  model_artifacts: string[];
  ui_url: string;
}

/** An MLflow 3 logged model of a run. */
export interface ILoggedModel {
  model_id: string;
  name: string;
  source_run_id: string | null;
  status?: string;
  model_type?: string;
  /** Registered versions made from it. */
  registrations: { name: string; version: string }[];
  ui_url: string;
}

/** 2-10 runs side by side. */
export interface ICompare {
  runs: (IRunSummary & { ui_url: string })[];
  param_keys: string[];
  differing_params: string[];
  metric_keys: string[];
  /** metric -> run id -> [step, value][] */
  histories: { [metric: string]: { [runId: string]: [number, number][] } };
}

/** A registered model. */
export interface IModel {
  name: string;
  description: string;
  aliases: { [alias: string]: string };
  tags: { [key: string]: string };
  latest_version: number | null;
}

/** A model version. */
export interface IModelVersion {
  name: string;
  version: string;
  status: string;
  run_id: string | null;
  /** The MLflow 3 logged model it was registered from, if any. */
  model_id?: string | null;
  source: string;
  aliases: string[];
  tags: { [key: string]: string };
  creation_timestamp?: number;
  ui_url: string;
}

function query(params: { [key: string]: string | string[] | undefined | null }): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') {
      continue;
    }
    for (const one of Array.isArray(v) ? v : [v]) {
      q.append(k, one);
    }
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

const enc = encodeURIComponent;

export const api = {
  experiments: () =>
    requestAPI<{ experiments: IExperiment[]; next_page_token?: string }>(
      'experiments' + query({ max_results: '1000' })
    ),
  experiment: (id: string) => requestAPI<IExperiment>(`experiments/${enc(id)}`),
  runs: (
    experimentId: string,
    opts: { filter?: string; orderBy?: string[]; pageToken?: string | null; max?: number }
  ) =>
    requestAPI<IRunsPage>(
      `experiments/${enc(experimentId)}/runs` +
        query({
          filter: opts.filter,
          order_by: opts.orderBy,
          page_token: opts.pageToken,
          max_results: String(opts.max ?? 100)
        })
    ),
  run: (runId: string) => requestAPI<IRunDetail>(`runs/${enc(runId)}`),
  artifacts: (runId: string, path: string) =>
    requestAPI<{ path: string; files: IArtifact[] }>(
      `runs/${enc(runId)}/artifacts` + query({ path })
    ),
  artifactPath: (runId: string, path: string) =>
    `runs/${enc(runId)}/artifact` + query({ path }),
  compare: (runIds: string[], metrics?: string[]) =>
    requestAPI<ICompare>(
      'runs/compare' + query({ run_ids: runIds.join(','), metrics: metrics?.join(',') })
    ),
  models: () =>
    requestAPI<{ models: IModel[]; next_page_token: string | null }>(
      'models' + query({ max_results: '1000' })
    ),
  versions: (name: string) =>
    requestAPI<{ model: IModel; versions: IModelVersion[] }>(`models/${enc(name)}/versions`),
  /** Register a run's logged model (`{modelId}`) or model directory (`{path}`). */
  register: (runId: string, from: { path?: string; modelId?: string }, name: string) =>
    requestAPI<IModelVersion>('models/register', {
      method: 'POST',
      body: JSON.stringify(
        from.modelId !== undefined
          ? { run_id: runId, model_id: from.modelId, name }
          : { run_id: runId, path: from.path ?? '', name }
      )
    }),
  setAlias: (name: string, alias: string, version: string) =>
    requestAPI<IModel>(`models/${enc(name)}/aliases/${enc(alias)}`, {
      method: 'PUT',
      body: JSON.stringify({ version })
    }),
  deleteAlias: (name: string, alias: string) =>
    requestAPI<void>(`models/${enc(name)}/aliases/${enc(alias)}`, { method: 'DELETE' })
};

/** A short local date-time for a millisecond timestamp. */
export function when(ms?: number | null): string {
  return ms ? new Date(ms).toLocaleString() : '';
}

/** A metric value with 4 significant digits. */
export function num(v: number | undefined): string {
  if (v === undefined || v === null) {
    return '';
  }
  return Number.isInteger(v) ? String(v) : Number(v).toPrecision(4);
}
