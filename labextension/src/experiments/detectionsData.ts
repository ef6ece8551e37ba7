/**
 * The detection evaluation a run logs as `eval/detections.json`, fetched through the
 * server extension's artifact route, and the counts the detections views show.
 */
import { fetchArtifact, listArtifacts } from '../api/experiments';

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
  /** AP at IoU 0.5 of this image alone (null: no cells); older runs: computed here. */
  ap50?: number | null;
  /** Detections minus true cells; older runs: computed here. */
  count_error?: number;
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

/**
 * AP at IoU 0.5 of one image (COCO's 101-point interpolation, as the evaluation computes it);
 * null when the image has no cells. Runs that logged `ap50` are taken at their word; for older
 * ones it is computed from the detections above the score threshold (a lower bound).
 */
export function imageAp50(im: IDetectionImage): number | null {
  if (im.ap50 !== undefined) {
    return im.ap50;
  }
  if (im.gt.length === 0) {
    return null;
  }
  const hit = new Set(im.matched.map(m => m[0]));
  const order = im.pred.map((_, i) => i).sort((a, b) => im.pred[b][4] - im.pred[a][4]);
  const precision: number[] = [];
  const recall: number[] = [];
  let tp = 0;
  order.forEach((i, k) => {
    tp += hit.has(i) ? 1 : 0;
    precision.push(tp / (k + 1));
    recall.push(tp / im.gt.length);
  });
  for (let k = precision.length - 2; k >= 0; k--) {
    precision[k] = Math.max(precision[k], precision[k + 1]);
  }
  let sum = 0;
  for (let r = 0; r <= 100; r++) {
    const at = recall.findIndex(x => x >= r / 100 - 1e-12);
    sum += at >= 0 ? precision[at] : 0;
  }
  return sum / 101;
}

/** Detections minus true cells of one image. */
export function countError(im: IDetectionImage): number {
  return im.count_error ?? im.pred.length - im.gt.length;
}

/**
 * How much the runs disagree on one image: the spread of their per-image AP@.5 (0-1) plus the
 * spread of their count errors relative to the image's cells.
 */
export function disagreement(images: IDetectionImage[]): number {
  const aps = images.map(imageAp50).filter((x): x is number => x !== null);
  const counts = images.map(countError);
  const cells = Math.max(1, images[0]?.gt.length ?? 1);
  const spread = (xs: number[]) => (xs.length ? Math.max(...xs) - Math.min(...xs) : 0);
  return spread(aps) + spread(counts) / cells;
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

/**
 * The run's detections, or null when it logged none. Listing `eval/` first tells "not
 * evaluated" (normal, shown as nothing) apart from a download that failed (shown as an error).
 */
export async function loadDetections(runId: string): Promise<IDetections | null> {
  let files: { path: string; is_dir: boolean }[];
  try {
    files = (await listArtifacts(runId, 'eval')).files;
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
    void entry.url.then(
      u => URL.revokeObjectURL(u),
      () => undefined
    );
  }
}
