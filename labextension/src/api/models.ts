/**
 * The model registry in MLflow (docs/openapi.yaml, tag "experiments"): registered models, their
 * versions and aliases, registering a run's model.
 */
import { enc, jsonBody, query, requestAPI } from './request';

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

/** Every registered model the caller may see. */
export function listModels(): Promise<{ models: IModel[]; next_page_token: string | null }> {
  return requestAPI('models' + query({ max_results: 1000 }));
}

/** A registered model with its versions. */
export function listVersions(name: string): Promise<{ model: IModel; versions: IModelVersion[] }> {
  return requestAPI(`models/${enc(name)}/versions`);
}

/** Register a run's logged model (`{modelId}`) or model directory (`{path}`) as `name`. */
export function registerModel(
  runId: string,
  from: { path?: string; modelId?: string },
  name: string
): Promise<IModelVersion> {
  return requestAPI(
    'models/register',
    jsonBody(
      'POST',
      from.modelId !== undefined
        ? { run_id: runId, model_id: from.modelId, name }
        : { run_id: runId, path: from.path ?? '', name }
    )
  );
}

/** Point alias `alias` of model `name` at `version`. */
export function setAlias(name: string, alias: string, version: string): Promise<IModel> {
  return requestAPI(`models/${enc(name)}/aliases/${enc(alias)}`, jsonBody('PUT', { version }));
}

/** Remove alias `alias` of model `name`. */
export function deleteAlias(name: string, alias: string): Promise<void> {
  return requestAPI(`models/${enc(name)}/aliases/${enc(alias)}`, { method: 'DELETE' });
}
