/**
 * Projects (docs/openapi.yaml, tag "projects"): who works on what, with which GPU quota.
 */
import { requestAPI } from './request';

/** One project as the control plane lists it (docs/openapi.yaml, Project). */
export interface IProject {
  /** Unique name, lowercase letters, digits and dashes. */
  name: string;
  description: string;
  /** GPUs the project may hold at once; null: no project quota. */
  gpu_quota: number | null;
  /** Dataset version the project's results are compared on. */
  reference_dataset: string | null;
  /** True for the project everyone belongs to. */
  everyone: boolean;
  /** Whether the caller manages this project. */
  can_manage: boolean;
}

/** Answer of `GET mlops/api/projects`. */
export interface IProjects {
  projects: IProject[];
  /** Browser URL of the project pages on the control plane. */
  pages_url: string;
}

/** The projects the caller belongs to (every project for administrators). */
export function listProjects(): Promise<IProjects> {
  return requestAPI('projects');
}
