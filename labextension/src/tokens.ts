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

/** Command ids of the extension. */
export namespace CommandIDs {
  export const openSidebar = 'mlops:open-sidebar';
  export const refreshStatus = 'mlops:refresh-status';
}
