/**
 * What other plugins and the extension's own views share: the answer shapes of the server
 * extension (docs/openapi.yaml; defined next to their calls in `./api`), the command ids, and
 * the Lumino tokens of the shared services, provided by the plugins of index.ts.
 */
import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

import type { IDeployment } from './api/deployments';
import type { IExperiment } from './api/experiments';
import type { IJob, IJobList, IPipeline, ISweep } from './api/jobs';
import type { IModel, IModelVersion } from './api/models';
import type { INotification, INotificationFeed } from './api/notifications';
import type { IProject, IProjects } from './api/projects';

export type * from './api/datasets';
export type * from './api/deployments';
export type * from './api/experiments';
export type * from './api/jobs';
export type * from './api/lineage';
export type * from './api/models';
export type * from './api/notifications';
export type * from './api/projects';
export type * from './api/status';
export type * from './api/templates';
export { CommandIDs } from './commands';

/**
 * The lab's one poller: live views load again at each tick, and the caller's new
 * notifications arrive through it.
 */
export interface IMlopsPoller {
  /** Emitted at each poll (the poll's number). */
  readonly ticked: ISignal<any, number>;
  /** Emitted with the notifications that arrived since the last poll. */
  readonly notified: ISignal<any, INotificationFeed>;
  /** Milliseconds between polls (the `refreshInterval` setting). */
  interval: number;
  /** Poll now and restart the interval from here. */
  pollNow(): void;
}

/** The shared poller. */
export const IMlopsPoller = new Token<IMlopsPoller>(
  'jupyter-mlops:IMlopsPoller',
  'The poller every live view of jupyter-mlops follows.'
);

/**
 * A list the server holds, kept for every view that shows it and refreshed by the poller.
 * `A` is the whole answer the list comes in, when it brings more than the list.
 */
export interface IMlopsList<T, A = T[]> {
  /** The items of the last answer. */
  readonly items: readonly T[];
  /** The last answer (null before the first): what comes with the list, e.g. the GPU queue. */
  readonly answer: A | null;
  /** Why the last load failed (null once one succeeds). */
  readonly error: string | null;
  /** Whether the list follows the poller: a view asked for it (until then it holds nothing). */
  readonly following: boolean;
  /** Emitted when the items or the error changed. */
  readonly changed: ISignal<any, void>;
  /** Load now (after an action, so its effect shows at once); from then on the list follows the poller. */
  refresh(): Promise<void>;
}

/**
 * The lab's state that several views share: every view listing one of these reads it here, so
 * one request per poll serves them all.
 */
export interface IMlopsModel {
  /** The caller's jobs, with the whole GPU queue (`GET jobs`). */
  readonly jobs: IMlopsList<IJob, IJobList>;
  /** The caller's sweeps. */
  readonly sweeps: IMlopsList<ISweep>;
  /** The caller's pipelines. */
  readonly pipelines: IMlopsList<IPipeline>;
  /** The deployments the caller may see. */
  readonly deployments: IMlopsList<IDeployment>;
  /** The projects the caller belongs to, with the project pages' URL. */
  readonly projects: IMlopsList<IProject, IProjects>;
  /** The experiments the caller may see. */
  readonly experiments: IMlopsList<IExperiment>;
  /** The registered models the caller may see. */
  readonly models: IMlopsList<IModel>;
  /** The caller's notifications. */
  readonly notifications: {
    readonly items: readonly INotification[];
    readonly unread: number;
    readonly changed: ISignal<any, INotification[]>;
    markRead(id: number): Promise<void>;
  };
}

/** The shared state. */
export const IMlopsModel = new Token<IMlopsModel>(
  'jupyter-mlops:IMlopsModel',
  'Jobs, deployments, projects, experiments, models and notifications of jupyter-mlops, shared by its views.'
);

/** A button shown on every model version (e.g. "Deploy"). */
export interface IModelVersionAction {
  /** Unique id; adding an action with the same id replaces it. */
  id: string;
  /** Button text. */
  label: string;
  /** Tooltip. */
  caption?: string;
  /** Whether the button shows for this version (default: always). */
  isVisible?: (version: IModelVersion) => boolean;
  /** Run the action; a thrown error's message is shown next to the version. */
  execute?: (version: IModelVersion) => Promise<string | void> | string | void;
  /** Instead of `execute`: a form shown under the version while the button is toggled on. */
  render?: (version: IModelVersion, close: () => void) => JSX.Element;
}

/** The buttons every model version shows (the Models section reads them). */
export interface IModelVersionActions {
  /** Add an action (one with the same id is replaced). */
  add(action: IModelVersionAction): void;
  /** Remove the action `id`. */
  remove(id: string): void;
  /** The actions, in the order they were added. */
  list(): IModelVersionAction[];
  /** Emitted when an action was added or removed. */
  readonly changed: ISignal<any, void>;
}

/** Where plugins add actions to model versions (the deployments plugin adds "Deploy"). */
export const IModelVersionActions = new Token<IModelVersionActions>(
  'jupyter-mlops:IModelVersionActions',
  'Buttons shown on every model version of the jupyter-mlops Models section.'
);
