/**
 * The detection evaluation a run logs as `eval/detections.json`, fetched through the
 * server extension's artifact route, and the counts the detections views show.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { api } from './api';

/** The artifact every evaluated run logs. */
export const DETECTIONS_PATH = 'eval/detections.json';

/** A box `[x, y, w, h]` in image pixels. */
export type Box = [number, number, number, number];

/** One validation image of the evaluation. */
export interface IDetectionImage {
  /** A name shared by the runs evaluated on the same image, e.g. `img_0003`. */
  name: string;
  /** Run artifact path of the image (PNG). */
  image: string;
  /** Run artifact path of the overlay the run drew itself (PNG). */
  overlay?: string;
  width: number;
  height: number;
  /** Ground-truth boxes. */
  gt: Box[];
  /** Predicted boxes `[x, y, w, h, score]` above the score threshold. */
  pred: [number, number, number, number, number][];
  /** `[pred_idx, gt_idx]` pairs matched at the IoU threshold. */
  matched: [number, number][];
  /** Ground-truth indices no prediction matched (false negatives). */
  missed: number[];
  /** Prediction indices that matched no ground truth (false positives). */
  false: number[];
}

/** The whole `eval/detections.json`. */
export interface IDetections {
  iou_threshold: number;
  score_threshold: number;
  images: IDetectionImage[];
}

/** Totals over all images of one run. */
export interface IDetectionTotals {
  images: number;
  gt: number;
  pred: number;
  matched: number;
  missed: number;
  false: number;
}

export function totals(d: IDetections): IDetectionTotals {
  const t = { images: d.images.length, gt: 0, pred: 0, matched: 0, missed: 0, false: 0 };
  for (const im of d.images) {
    t.gt += im.gt.length;
    t.pred += im.pred.length;
    t.matched += im.matched.length;
    t.missed += im.missed.length;
    t.false += im.false.length;
  }
  return t;
}

/** Missed plus false cells of one image: the gallery's sort key. */
export function errorCount(im: IDetectionImage): number {
  return im.missed.length + im.false.length;
}

/** Images with at least one error, most errors first (then by name, so the order is stable). */
export function errorImages(d: IDetections): IDetectionImage[] {
  return d.images
    .filter(im => errorCount(im) > 0)
    .sort((a, b) => errorCount(b) - errorCount(a) || a.name.localeCompare(b.name));
}

function artifactUrl(runId: string, path: string): { url: string; settings: ServerConnection.ISettings } {
  const settings = ServerConnection.makeSettings();
  return { url: URLExt.join(settings.baseUrl, 'mlops', 'api', api.artifactPath(runId, path)), settings };
}

async function fetchArtifact(runId: string, path: string): Promise<Response> {
  const { url, settings } = artifactUrl(runId, path);
  const resp = await ServerConnection.makeRequest(url, {}, settings);
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    throw new Error(body.message ?? `${path}: ${resp.status} ${resp.statusText}`);
  }
  return resp;
}

/**
 * The run's detections, or null when it logged none. Listing `eval/` first tells "not
 * evaluated" (normal, shown as nothing) apart from a download that failed (shown as an error).
 */
export async function loadDetections(runId: string): Promise<IDetections | null> {
  let files: { path: string; is_dir: boolean }[];
  try {
    files = (await api.artifacts(runId, 'eval')).files;
  } catch {
    return null;
  }
  if (!files.some(f => !f.is_dir && f.path === DETECTIONS_PATH)) {
    return null;
  }
  const data = (await (await fetchArtifact(runId, DETECTIONS_PATH)).json()) as IDetections;
  if (!data || !Array.isArray(data.images)) {
    throw new Error(`${DETECTIONS_PATH} of run ${runId} has no "images" list`);
  }
  return data;
}

/**
 * Object URLs of image artifacts, shared by every thumbnail and crop of the same image and
 * revoked when the last user lets go, so paging through dozens of images does not pile up blobs.
 */
const blobs = new Map<string, { url: Promise<string>; users: number }>();

export function acquireImage(runId: string, path: string): Promise<string> {
  const key = `${runId}/${path}`;
  let entry = blobs.get(key);
  if (!entry) {
    const url = fetchArtifact(runId, path).then(async r => URL.createObjectURL(await r.blob()));
    entry = { url, users: 0 };
    blobs.set(key, entry);
    // a failed download is not cached: the next look tries again
    url.catch(() => blobs.delete(key));
  }
  entry.users += 1;
  return entry.url;
}

export function releaseImage(runId: string, path: string): void {
  const key = `${runId}/${path}`;
  const entry = blobs.get(key);
  if (!entry) {
    return;
  }
  entry.users -= 1;
  if (entry.users <= 0) {
    blobs.delete(key);
    void entry.url.then(u => URL.revokeObjectURL(u), () => undefined);
  }
}
