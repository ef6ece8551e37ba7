/**
 * Deployments of model versions (docs/openapi.yaml, tag "deployments"): the list, approvals,
 * version changes, tokens, trying a model, monitoring and drift.
 */
import { enc, jsonBody, query, requestAPI } from './request';

/** Recent traffic through an endpoint (the last minute). */
export interface ITraffic {
  requests_per_s: number;
  p50_ms: number | null;
  p95_ms: number | null;
  errors: number;
}

/** How the serving model server is doing, as the control plane's supervisor sees it. */
export interface IServerHealth {
  state: 'running' | 'unresponsive' | 'restarting';
  /** When the state began (seconds since the epoch). */
  since: number;
  /** Restart attempt under way (0 when none). */
  attempt: number;
  /** Why the server last stopped, e.g. "killed by signal 9 (SIGKILL)". */
  last_exit: string | null;
  /** Restarts since the control plane started. */
  restarts: number;
  next_attempt_at: number | null;
  /** E.g. "restarting, attempt 2, last exit: killed by signal 9 (SIGKILL)". */
  summary: string;
}

/** One deployment as `GET mlops/api/deployments` lists it (docs/openapi.yaml, Deployment). */
export interface IDeployment {
  name: string;
  project: string;
  model_name: string;
  /** The version asked for (it may still be loading, or have failed). */
  model_version: string;
  /** The version answering requests now, if any. */
  serving_version: string | null;
  /** `ready` only while the serving server answers; `unresponsive` and `restarting` say it
   * does not (see `server`). */
  status:
    | 'starting'
    | 'ready'
    | 'updating'
    | 'failed'
    | 'pending_approval'
    | 'unresponsive'
    | 'restarting';
  /** Whether the caller may approve or reject the pending version (a project manager). */
  can_approve?: boolean;
  message: string;
  /** Tail of the model server's log when a version failed to load. */
  log: string;
  visibility: 'project' | 'lab';
  replicas: number;
  /** Endpoint path under the control plane (`endpoints/<name>/invocations`). */
  endpoint: string;
  traffic: ITraffic;
  /** The supervised serving server (null where the platform does not supervise it). */
  server?: IServerHealth | null;
  events?: IDeploymentEvent[];
}

/** One line of a deployment's audit log. */
export interface IDeploymentEvent {
  at: number;
  actor: string;
  action: string;
  model_version: string | null;
  detail: string;
}

/** Numbers of one point or one total of the traffic series. */
export interface ITrafficNumbers {
  requests: number;
  requests_per_s: number | null;
  errors_4xx: number;
  errors_5xx: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  batch_mean: number | null;
  batch_max: number | null;
}

/** Traffic of a deployment over a window, per version. */
export interface IMetrics {
  window: string;
  from: number;
  to: number;
  step_s: number;
  serving_version: string | null;
  versions: {
    version: string;
    total: ITrafficNumbers;
    points: (ITrafficNumbers & { t: number })[];
  }[];
  total: ITrafficNumbers;
  events: { at: number; kind: string; version: string | null; actor: string }[];
}

/** How far one input feature moved from the reference. */
export interface IFeatureDrift {
  feature: string;
  psi: number;
  drifted: boolean;
  reference_mean: number | null;
  recent_mean: number | null;
}

/** What a deployment records of its inputs, and when drift alerts. */
export interface IMonitoringSettings {
  record_inputs: boolean;
  sample_rate: number;
  retention_days: number;
  drift_threshold: number;
  updated_by: string | null;
}

/** Drift of the inputs of the serving version against the reference. */
export interface IDrift {
  state: 'off' | 'collecting' | 'no_reference' | 'stable' | 'drifted';
  version: string | null;
  samples: number;
  min_samples: number;
  reference: { source: string | null; rows?: number; reason?: string } | null;
  features: IFeatureDrift[];
  settings: IMonitoringSettings;
  last_alert: { drifted: boolean; features: string[]; at: number } | null;
}

/** Every deployment the caller may see. */
export function listDeployments(): Promise<{ deployments: IDeployment[] }> {
  return requestAPI('deployments');
}

/** One deployment, with its audit log. */
export function getDeployment(name: string): Promise<IDeployment> {
  return requestAPI(`deployments/${enc(name)}`);
}

/** Deploy a model version. */
export function createDeployment(body: {
  name: string;
  model_name: string;
  version: string;
  project: string;
  visibility: string;
}): Promise<IDeployment> {
  return requestAPI('deployments', jsonBody('POST', body));
}

/** Serve another version of the model. */
export function updateDeployment(name: string, version: string): Promise<IDeployment> {
  return requestAPI(`deployments/${enc(name)}`, jsonBody('PATCH', { version }));
}

/** Remove a deployment. */
export function deleteDeployment(name: string): Promise<unknown> {
  return requestAPI(`deployments/${enc(name)}`, { method: 'DELETE' });
}

/** Approve the version waiting for a project manager. */
export function approveDeployment(name: string): Promise<unknown> {
  return requestAPI(`deployments/${enc(name)}/approve`, { method: 'POST' });
}

/** Reject the version waiting for a project manager. */
export function rejectDeployment(name: string, reason: string): Promise<unknown> {
  return requestAPI(`deployments/${enc(name)}/reject`, jsonBody('POST', { reason }));
}

/** A new token for calling the endpoint (shown once). */
export function createToken(name: string, note: string): Promise<{ token: string }> {
  return requestAPI(`deployments/${enc(name)}/tokens`, jsonBody('POST', { note }));
}

/** Send one input (an image, CSV or JSON file) to the deployed model. */
export function predict(name: string, input: Blob, contentType: string): Promise<any> {
  return requestAPI(`deployments/${enc(name)}/predict`, {
    method: 'POST',
    body: input,
    headers: { 'Content-Type': contentType }
  });
}

/** Traffic over `window` (e.g. `1h`, `24h`). */
export function getMetrics(name: string, window: string): Promise<IMetrics> {
  return requestAPI(`deployments/${enc(name)}/metrics` + query({ window }));
}

/** Drift of the inputs. */
export function getDrift(name: string): Promise<IDrift> {
  return requestAPI(`deployments/${enc(name)}/drift`);
}

/** Change what the deployment records and when drift alerts. */
export function setMonitoring(
  name: string,
  settings: Pick<
    IMonitoringSettings,
    'record_inputs' | 'sample_rate' | 'retention_days' | 'drift_threshold'
  >
): Promise<unknown> {
  return requestAPI(`deployments/${enc(name)}/monitoring`, jsonBody('PUT', settings));
}
