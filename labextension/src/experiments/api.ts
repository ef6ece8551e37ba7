/**
 * The experiments and models routes as one object, for views not yet calling
 * `../api/experiments` and `../api/models` directly.
 */
import * as experiments from '../api/experiments';
import * as models from '../api/models';

export type {
  IArtifact,
  ICompare,
  IExperiment,
  IRunDetail,
  IRunsPage,
  IRunSummary
} from '../api/experiments';
export type { ILoggedModel, IModel, IModelVersion } from '../api/models';
export { num, when } from '../format';

export const api = {
  experiments: experiments.listExperiments,
  experiment: experiments.getExperiment,
  runs: experiments.listRuns,
  run: experiments.getRun,
  artifacts: experiments.listArtifacts,
  artifactPath: experiments.artifactPath,
  compare: experiments.compareRuns,
  models: models.listModels,
  versions: models.listVersions,
  register: models.registerModel,
  setAlias: models.setAlias,
  deleteAlias: models.deleteAlias
};
