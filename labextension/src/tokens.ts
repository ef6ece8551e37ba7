/**
 * Shapes of the server extension's answers (described in docs/openapi.yaml).
 */

/** A live check of one platform component. */
export interface IComponentStatus {
  /** Whether the component answered. */
  reachable: boolean;
  /** Its version, when it answered. */
  version?: string;
  /** Why it is unreachable, when it is. */
  error?: string;
}

/** Answer of `GET mlops/api/status`. */
export interface IStatus {
  /** The hub user and their lab role. */
  user: { name: string; role: string };
  /** The control plane service. */
  control_plane: IComponentStatus;
  /** The MLflow tracking server, with the browser URL of its UI. */
  mlflow: IComponentStatus & { ui_url: string };
  /** GPUs this server may use. */
  gpus: { devices: IGpu[]; message: string; detail?: string };
  /** The shared dataset mount. */
  dataset: { path: string; exists: boolean; writable: boolean };
}

/** One GPU as the inventory reports it. */
export interface IGpu {
  index: number;
  uuid: string;
  name: string;
  memory_total_mb: number;
  memory_used_mb?: number | null;
  utilization_pct?: number | null;
}

/** One entry of the caller's notification feed (`GET mlops/api/notifications`). */
export interface INotification {
  /** Grows with every notification. */
  id: number;
  user: string;
  /** What happened: `job.failed`, `deployment.changed`, `approval.requested`... */
  kind: string;
  /** How the lab shows it. */
  level: 'info' | 'warning';
  message: string;
  /** A URL path, an http(s) URL, or `mlops:<kind>/<id>` (an object the lab opens itself). */
  link: string | null;
  /** Seconds since the epoch. */
  created: number;
  read: boolean;
}

/** Answer of `GET mlops/api/notifications`. */
export interface INotificationFeed {
  notifications: INotification[];
  /** How many of all the caller's notifications are unread. */
  unread: number;
  /** The id of the caller's newest notification (0: none). */
  last_id: number;
}

export { CommandIDs } from './commands';
