/**
 * The platform's health as this server sees it, and GPU-hours used.
 */
import { requestAPI } from './request';

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
  /**
   * GPUs this server may use; `requested`: whether its allocation asked for any (`null`: not
   * known, a server started outside the platform); `profile`: the spawn profile's slug.
   */
  gpus: {
    devices: IGpu[];
    message: string;
    detail?: string;
    requested?: boolean | null;
    profile?: string;
  };
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

/** GPU-hours over the last 7 and 30 days. */
export interface IGpuHours {
  '7d': number;
  '30d': number;
}

/** What `GET usage` answers: what the caller may see of GPU-hours. */
export interface IUsageView {
  user: string;
  /** The caller's own hours, in total and per project. */
  mine: IGpuHours & { by_project: Record<string, IGpuHours> };
  /** Projects the caller manages (every project for administrators), per member. */
  projects: Record<string, IGpuHours & { by_user: Record<string, IGpuHours> }>;
}

/** A live check of every component (`GET status`). */
export function getStatus(): Promise<IStatus> {
  return requestAPI('status');
}

/** The GPU-hours the caller may see (`GET usage`). */
export function getUsage(): Promise<IUsageView> {
  return requestAPI('usage');
}
