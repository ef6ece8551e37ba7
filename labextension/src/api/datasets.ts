/**
 * The dataset catalog (docs/openapi.yaml, tag "datasets"): datasets, versions and their files,
 * diffs between versions, publishing a folder or uploaded files, tags and project references.
 */
import { apiUrl, enc, jsonBody, query, requestAPI } from './request';

/** A box in image pixels. */
export interface IObjectBox {
  x: number;
  y: number;
  w: number;
  h: number;
  label?: string;
}

/** What moved between two versions' splits (docs/openapi.yaml `SplitMoves`). */
export interface ISplitMoves {
  kept: number;
  moved: number;
  by_move: Record<string, number>;
  examples: { path: string; from: string | null; to: string | null }[];
  added: Record<string, number>;
  removed: Record<string, number>;
}

/** A recorded change of one image's annotated objects (`AnnotationChange`). */
export interface IAnnotationChange {
  version: string;
  parent: string | null;
  author: string;
  at: number;
  tool: string;
  added: number;
  removed: number;
  moved: number;
}

/** One image whose annotated objects differ between two versions. */
export interface IObjectDiffImage {
  path: string;
  hash: string;
  width?: number | null;
  height?: number | null;
  added: number;
  removed: number;
  moved: number;
  unchanged: number;
  objects?: {
    added: IObjectBox[];
    removed: IObjectBox[];
    moved: { old: IObjectBox; new: IObjectBox; iou: number }[];
  };
  changes?: IAnnotationChange[];
}

/** The per-object part of a diff. */
export interface IObjectDiff {
  images: IObjectDiffImage[];
  totals: { images: number; added: number; removed: number; moved: number };
  truncated: boolean;
}

/** One file of a dataset version (docs/openapi.yaml `DatasetFile`). */
export interface IDatasetFile {
  path: string;
  size: number;
  hash: string;
  kind: 'image' | 'annotation' | 'file';
  width?: number;
  height?: number;
  dtype?: string;
  annotation?: string;
  objects?: number;
  split?: string;
}

/** A version's facts. */
export interface IDatasetVersion {
  dataset: string;
  version: string;
  manifest_id: string;
  message: string;
  author: string;
  created_at: number;
  tags: string[];
  summary: {
    files: number;
    bytes: number;
    images: number;
    image_sizes: Record<string, number>;
    objects: number;
    annotated_images: number;
    splits: Record<string, number>;
    parent?: string;
    split_moves?: ISplitMoves;
  };
}

/** A dataset of the catalog. */
export interface IDataset {
  name: string;
  project: string;
  description: string;
  tags: Record<string, string>;
  versions?: IDatasetVersion[];
  latest?: IDatasetVersion | null;
  referenced_by?: string[];
}

/** What changed between two versions of a dataset. */
export interface IDatasetDiff {
  from: string;
  to: string;
  added: IDatasetFile[];
  removed: IDatasetFile[];
  changed: { path: string; old: IDatasetFile; new: IDatasetFile }[];
  unchanged: number;
  split_moves?: ISplitMoves;
  objects?: IObjectDiff;
}

/** A publish of a dataset version, running on the server. */
export interface IPublishJob {
  id: string;
  state: 'running' | 'done' | 'failed';
  phase: string;
  done: number;
  total: number;
  error?: string;
  version?: IDatasetVersion;
}

/** What changed in a workspace folder against a version. */
export interface IFolderStatus {
  version: string;
  added: string[];
  removed: string[];
  modified: string[];
  unchanged: number;
  rehashed: number;
}

/** An annotated object of an image, in image pixels. */
export interface IAnnotationBox {
  x: number;
  y: number;
  w: number;
  h: number;
  label?: string;
}

/** One page of a version's files. */
export interface IDatasetFilePage {
  total: number;
  files: IDatasetFile[];
}

/** Every dataset of the catalog the caller may see. */
export function listDatasets(): Promise<{ datasets: IDataset[] }> {
  return requestAPI('datasets');
}

/** A dataset as `GET datasets/<name>` answers it: with its versions, newest first. */
export type IDatasetDetail = IDataset & { versions: IDatasetVersion[] };

/** A dataset with its versions. */
export function getDataset(name: string): Promise<IDatasetDetail> {
  return requestAPI(`datasets/${enc(name)}`);
}

/** One page of a version's files (`params`: offset, limit, kind, split, search...). */
export function listVersionFiles(
  name: string,
  version: string,
  params: { [key: string]: string | number | undefined }
): Promise<IDatasetFilePage> {
  return requestAPI(`datasets/${enc(name)}/versions/${enc(version)}` + query(params));
}

/** The annotated objects of one image of a version. */
export function getAnnotations(
  name: string,
  version: string,
  path: string
): Promise<{ boxes: IAnnotationBox[] }> {
  return requestAPI(`datasets/${enc(name)}/versions/${enc(version)}/annotations` + query({ path }));
}

/** What changed from version `from` to version `to`. */
export function diffVersions(name: string, from: string, to: string): Promise<IDatasetDiff> {
  return requestAPI(`datasets/${enc(name)}/diff` + query({ from, to }));
}

/** What changed in a workspace folder against a version of the dataset. */
export function folderStatus(name: string, folder: string): Promise<IFolderStatus> {
  return requestAPI(`datasets/${enc(name)}/status`, jsonBody('POST', { folder }));
}

/** Send one file of an upload session (`path` relative to the upload's root). */
export function uploadFile(session: string, path: string, file: Blob): Promise<unknown> {
  const segments = path.split('/').map(enc).join('/');
  return requestAPI(`datasets/uploads/${enc(session)}/${segments}`, { method: 'PUT', body: file });
}

/** Start publishing a new version (from a folder or an upload session). */
export function publishVersion(name: string, payload: unknown): Promise<IPublishJob> {
  return requestAPI(`datasets/${enc(name)}/publish`, jsonBody('POST', payload));
}

/** How a publish is going. */
export function getPublishJob(id: string): Promise<IPublishJob> {
  return requestAPI(`datasets/jobs/${enc(id)}`);
}

/** Point the tag `tag` of a dataset at `version`. */
export function setTag(name: string, tag: string, version: string): Promise<unknown> {
  return requestAPI(`datasets/${enc(name)}/tags/${enc(tag)}`, jsonBody('PUT', { version }));
}

/** Make `version` the reference version of `project`. */
export function setReference(name: string, version: string, project: string): Promise<unknown> {
  return requestAPI(
    `datasets/${enc(name)}/versions/${enc(version)}/reference`,
    jsonBody('PUT', { project })
  );
}

/** The browser URL of a stored file's thumbnail or preview (content-addressed by `hash`). */
export function objectUrl(hash: string, kind: 'thumbnail' | 'preview', size?: number): string {
  return apiUrl(`datasets/objects/${enc(hash)}/${kind}` + query({ size }));
}
