/**
 * Lineage (docs/openapi.yaml): which runs used a dataset version, which model versions came
 * from them, where those are deployed.
 */
import { enc, requestAPI } from './request';

/** Where a lineage starts. */
export type LineageSource =
  | { kind: 'dataset'; name: string; version: string }
  | { kind: 'deployment'; name: string }
  | { kind: 'model'; name: string; version: string };

/** The route of a lineage (also a stable key for views). */
export function lineagePath(s: LineageSource): string {
  switch (s.kind) {
    case 'dataset':
      return `datasets/${enc(s.name)}/versions/${enc(s.version)}/lineage`;
    case 'deployment':
      return `deployments/${enc(s.name)}/lineage`;
    default:
      return `models/${enc(s.name)}/versions/${enc(s.version)}/lineage`;
  }
}

/** The lineage tree from `source` (its shape depends on the kind). */
export function getLineage(source: LineageSource): Promise<any> {
  return requestAPI(lineagePath(source));
}
