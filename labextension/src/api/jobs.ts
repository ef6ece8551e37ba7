/**
 * Jobs, sweeps and pipelines of the control plane (docs/openapi.yaml, tag "jobs"): the lists of
 * the caller's work, one job's detail and log, cancelling and running again, batch predictions.
 */
import { jsonBody, query, requestAPI } from './request';

/** One job as `GET mlops/api/jobs` lists it (docs/openapi.yaml, Job). */
export interface IJob {
  id: number;
  user: string;
  kind: 'notebook' | 'script';
  spec: {
    path: string;
    params: Record<string, any>;
    gpus: number;
    project: string;
    experiment: string;
    dataset_version: string;
    /** Seconds the job may run (0: only the platform's maximum, if any). */
    timeout?: number;
  };
  state: string;
  reason: string;
  position: number | null;
  submitted_at: number;
  started_at: number | null;
  finished_at: number | null;
  gpu_indices: number[];
  run_id: string;
  experiment_id: string;
  progress: { done?: number; total?: number; label?: string };
  metrics: Record<string, number>;
  sweep_id: number | null;
  trial_number: number | null;
  pipeline_id: number | null;
  step: string;
  snapshot_of: number | null;
  executed_notebook: string | null;
  /** The seed given to the job (its `seed` parameter, the file's default, or one drawn). */
  seed?: number | null;
  /** `dataset_version` pinned at submit (`cells@v3` for `cells@latest`). */
  dataset_resolved?: string;
  /** The lock the job's code ran with; `wanted`/`of`: a rerun exactly reproducing job `of`. */
  environment?: {
    hash?: string;
    packages?: number;
    rebuilt?: boolean;
    wanted?: string;
    of?: number;
  };
}

/** Answer of `GET jobs`: my jobs and the whole GPU queue (entries of others without detail). */
export interface IJobList {
  jobs: IJob[];
  queue: {
    id: number | null;
    user: string;
    state: string;
    gpus: number;
    position: number | null;
    reason: string;
    mine: boolean;
  }[];
}

/** A hyperparameter sweep and its trials. */
export interface ISweep {
  id: number;
  state: string;
  metric: string;
  direction: 'maximize' | 'minimize';
  sampler: string;
  pruner: string;
  n_trials: number;
  asked: number;
  best: { value: number; number: number; params: Record<string, any> } | null;
  history: { number: number; state: string; value: number | null; best: number | null }[];
  trials: {
    job_id: number;
    number: number;
    state: string;
    params: Record<string, any>;
    value: number | null;
    reason: string;
    position: number | null;
  }[];
  job: { path: string };
}

/** A pipeline of jobs and the state of each step. */
export interface IPipeline {
  id: number;
  name: string;
  state: string;
  schedule: string;
  next_at: number | null;
  steps: {
    name: string;
    run: string;
    needs: string[];
    state: string;
    job_id: number | null;
    reason: string;
  }[];
}

/** The control plane's answer to POST batch-predictions. */
export interface IBatchPrediction {
  job: IJob;
  model_name: string;
  version: string;
  dataset: string;
  dataset_version: string;
  files: number;
  outputs: { csv: string; json: string; artifact_path: string };
}

/** One piece of a job's log. */
export interface ILogChunk {
  text: string;
  /** Where the next piece starts. */
  offset: number;
  /** Whether the job has ended and the log is whole. */
  complete: boolean;
}

/** My jobs and the GPU queue. */
export function listJobs(): Promise<IJobList> {
  return requestAPI('jobs');
}

/** My sweeps. */
export function listSweeps(): Promise<{ sweeps: ISweep[] }> {
  return requestAPI('sweeps');
}

/** My pipelines. */
export function listPipelines(): Promise<{ pipelines: IPipeline[] }> {
  return requestAPI('pipelines');
}

/** One job. */
export function getJob(id: number): Promise<IJob> {
  return requestAPI(`jobs/${id}`);
}

/** A job's log from byte `offset` on. */
export function getJobLog(id: number, offset: number): Promise<ILogChunk> {
  return requestAPI(`jobs/${id}/logs` + query({ offset }));
}

/** Cancel a job, or run it again (`rerun`, with `{exact}` or new `{params}`). */
export function jobAction(id: number, action: string, body: unknown = {}): Promise<IJob> {
  return requestAPI(`jobs/${id}/${action}`, jsonBody('POST', body));
}

/** One sweep with its trials. */
export function getSweep(id: number): Promise<ISweep> {
  return requestAPI(`sweeps/${id}`);
}

/** One pipeline with its steps. */
export function getPipeline(id: number): Promise<IPipeline> {
  return requestAPI(`pipelines/${id}`);
}

/** Predict with a model version over a dataset version, as a job. */
export function submitBatchPrediction(body: {
  model_name: string;
  version: string;
  dataset: string;
  dataset_version: string;
  project: string;
}): Promise<IBatchPrediction> {
  return requestAPI('batch-predictions', jsonBody('POST', body));
}
