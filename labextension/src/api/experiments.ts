/**
 * Experiments and runs in MLflow, through the server extension (docs/openapi.yaml, tag
 * "experiments"): the runs table, a run's detail and artifacts, runs side by side.
 */
import { apiUrl, enc, query, requestAPI, requestRaw } from './request';
import { ILoggedModel } from './models';

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

/** 2-10 runs side by side. */
export interface ICompare {
  runs: (IRunSummary & { ui_url: string })[];
  param_keys: string[];
  differing_params: string[];
  metric_keys: string[];
  /** metric -> run id -> [step, value][] */
  histories: { [metric: string]: { [runId: string]: [number, number][] } };
}

/** `GET runs/<id>/resources`: MLflow system metrics of a run, [seconds since start, value]. */
export interface IRunResources {
  run_id: string;
  metrics: Record<string, [number, number][]>;
}

/** The experiments the caller may see, with their project. */
export function listExperiments(): Promise<{
  experiments: IExperiment[];
  next_page_token?: string;
}> {
  return requestAPI('experiments' + query({ max_results: 1000 }));
}

/** One experiment. */
export function getExperiment(id: string): Promise<IExperiment> {
  return requestAPI(`experiments/${enc(id)}`);
}

/** One page of an experiment's runs, filtered and ordered by MLflow's syntax. */
export function listRuns(
  experimentId: string,
  opts: { filter?: string; orderBy?: string[]; pageToken?: string | null; max?: number }
): Promise<IRunsPage> {
  return requestAPI(
    `experiments/${enc(experimentId)}/runs` +
      query({
        filter: opts.filter,
        order_by: opts.orderBy,
        page_token: opts.pageToken,
        max_results: opts.max ?? 100
      })
  );
}

/** A run's detail. */
export function getRun(runId: string): Promise<IRunDetail> {
  return requestAPI(`runs/${enc(runId)}`);
}

/** The files of a run's artifact directory `path` (`''`: the root). */
export function listArtifacts(
  runId: string,
  path: string
): Promise<{ path: string; files: IArtifact[] }> {
  return requestAPI(`runs/${enc(runId)}/artifacts` + query({ path }));
}

/** The route of one artifact file (relative to the API, for `requestAPI` or `apiUrl`). */
export function artifactPath(runId: string, path: string): string {
  return `runs/${enc(runId)}/artifact` + query({ path });
}

/** The browser URL of one artifact file. */
export function artifactUrl(runId: string, path: string): string {
  return apiUrl(artifactPath(runId, path));
}

/** Download one artifact file (its bytes, whatever its type). */
export function fetchArtifact(runId: string, path: string): Promise<Response> {
  return requestRaw(artifactPath(runId, path));
}

/** 2-10 runs side by side, with the histories of `metrics` (default: all). */
export function compareRuns(runIds: string[], metrics?: string[]): Promise<ICompare> {
  return requestAPI(
    'runs/compare' + query({ run_ids: runIds.join(','), metrics: metrics?.join(',') })
  );
}

/** The system metrics (CPU, memory, GPU) a run sampled over time. */
export function getRunResources(runId: string): Promise<IRunResources> {
  return requestAPI(`runs/${enc(runId)}/resources`);
}
