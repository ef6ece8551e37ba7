/**
 * The lab's shared state (the `IMlopsModel` token), fed by the shared poller.
 */
import { listDeployments } from '../api/deployments';
import { listJobs } from '../api/jobs';
import { IDeployment, IJob, IMlopsModel, IMlopsPoller } from '../tokens';
import { NotificationsModel } from './notifications';
import { PolledList } from './polledList';

export class MlopsModel implements IMlopsModel {
  constructor(poller: IMlopsPoller) {
    this.jobs = new PolledList<IJob>(async () => (await listJobs()).jobs, poller);
    this.deployments = new PolledList<IDeployment>(
      async () => (await listDeployments()).deployments,
      poller
    );
    this.notifications = new NotificationsModel(poller);
  }

  readonly jobs: PolledList<IJob>;
  readonly deployments: PolledList<IDeployment>;
  readonly notifications: NotificationsModel;
}
