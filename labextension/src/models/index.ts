/**
 * The lab's shared state (the `IMlopsModel` token), fed by the shared poller: each list is
 * asked for once per poll, whichever views show it.
 */
import { listDeployments } from '../api/deployments';
import { listExperiments } from '../api/experiments';
import { listJobs, listPipelines, listSweeps } from '../api/jobs';
import { listModels } from '../api/models';
import { listProjects } from '../api/projects';
import {
  IDeployment,
  IExperiment,
  IJob,
  IJobList,
  IMlopsModel,
  IMlopsPoller,
  IModel,
  IPipeline,
  IProject,
  IProjects,
  ISweep
} from '../tokens';
import { NotificationsModel } from './notifications';
import { PolledList } from './polledList';

export class MlopsModel implements IMlopsModel {
  constructor(poller: IMlopsPoller) {
    this.jobs = new PolledList<IJob, IJobList>(listJobs, poller, a => a.jobs);
    this.sweeps = new PolledList<ISweep>(async () => (await listSweeps()).sweeps, poller);
    this.pipelines = new PolledList<IPipeline>(
      async () => (await listPipelines()).pipelines,
      poller
    );
    this.deployments = new PolledList<IDeployment>(
      async () => (await listDeployments()).deployments,
      poller
    );
    this.projects = new PolledList<IProject, IProjects>(listProjects, poller, a => a.projects);
    this.experiments = new PolledList<IExperiment>(
      async () => (await listExperiments()).experiments,
      poller
    );
    this.models = new PolledList<IModel>(async () => (await listModels()).models, poller);
    this.notifications = new NotificationsModel(poller);
  }

  readonly jobs: PolledList<IJob, IJobList>;
  readonly sweeps: PolledList<ISweep>;
  readonly pipelines: PolledList<IPipeline>;
  readonly deployments: PolledList<IDeployment>;
  readonly projects: PolledList<IProject, IProjects>;
  readonly experiments: PolledList<IExperiment>;
  readonly models: PolledList<IModel>;
  readonly notifications: NotificationsModel;
}
