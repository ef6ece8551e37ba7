/**
 * One validation image with its boxes drawn as SVG over it, a crop of one cell, and the legend.
 *
 * Images are fetched only once they scroll near the viewport (IntersectionObserver), so a page
 * of dozens of thumbnails costs only what is seen. Box kinds differ in colour AND dash pattern,
 * so they stay distinguishable without colour vision and on both themes.
 */
import React, { useEffect, useRef, useState } from 'react';

import { acquireImage, Box, IDetectionImage, releaseImage } from './detectionsData';

/** Which boxes to draw: everything, or only the errors (the gallery). */
export type BoxMode = 'all' | 'errors';

export type BoxKind = 'gt' | 'pred' | 'missed' | 'false';

export const BOX_LABELS: { [k in BoxKind]: string } = {
  gt: 'ground truth (found)',
  pred: 'prediction (matched)',
  missed: 'missed cell (false negative)',
  false: 'false cell (false positive)'
};

/** True once the element has come within a screen of the viewport; stays true. */
function useNearViewport(ref: React.RefObject<Element>): boolean {
  const [near, setNear] = useState(false);
  useEffect(() => {
    const el = ref.current;
    if (!el || near) {
      return;
    }
    if (typeof IntersectionObserver === 'undefined') {
      setNear(true);
      return;
    }
    const obs = new IntersectionObserver(
      entries => {
        if (entries.some(e => e.isIntersecting)) {
          setNear(true);
          obs.disconnect();
        }
      },
      { rootMargin: '300px' }
    );
    obs.observe(el);
    return () => obs.disconnect();
  }, [near]);
  return near;
}

/** The object URL of a run's image artifact once `enabled`, with its download error if any. */
function useImage(runId: string, path: string, enabled: boolean): { url?: string; error?: string } {
  const [state, setState] = useState<{ url?: string; error?: string }>({});
  useEffect(() => {
    if (!enabled) {
      return;
    }
    let live = true;
    acquireImage(runId, path).then(
      url => live && setState({ url }),
      e => live && setState({ error: e.message ?? String(e) })
    );
    return () => {
      live = false;
      releaseImage(runId, path);
    };
  }, [runId, path, enabled]);
  return state;
}

function iou(a: number[], b: number[]): number {
  const ix = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  const union = a[2] * a[3] + b[2] * b[3] - inter;
  return union > 0 ? inter / union : 0;
}

interface IShape {
  kind: BoxKind;
  box: number[];
  title: string;
}

/** The boxes of one image, each with its kind and a hover text. */
export function shapes(im: IDetectionImage, mode: BoxMode): IShape[] {
  const out: IShape[] = [];
  const missed = new Set(im.missed);
  const falsePos = new Set(im.false);
  if (mode === 'all') {
    // ground truth first, so matched predictions are drawn on top of it
    im.gt.forEach((b, i) => {
      if (!missed.has(i)) {
        out.push({ kind: 'gt', box: b, title: `ground truth ${i}: found` });
      }
    });
    for (const [p, g] of im.matched) {
      const b = im.pred[p];
      if (b) {
        const score = b[4] !== undefined ? ` · score ${b[4].toFixed(2)}` : '';
        const overlap = im.gt[g] ? ` · IoU ${iou(b, im.gt[g]).toFixed(2)}` : '';
        out.push({
          kind: 'pred',
          box: b,
          title: `prediction ${p}${score} · matches ground truth ${g}${overlap}`
        });
      }
    }
  }
  for (const i of missed) {
    if (im.gt[i]) {
      out.push({ kind: 'missed', box: im.gt[i], title: `missed cell: ground truth ${i}` });
    }
  }
  for (const p of falsePos) {
    const b = im.pred[p];
    if (b) {
      const score = b[4] !== undefined ? ` · score ${b[4].toFixed(2)}` : '';
      out.push({ kind: 'false', box: b, title: `false cell: prediction ${p}${score}` });
    }
  }
  return out;
}

function Boxes(props: { items: IShape[] }): JSX.Element {
  return (
    <>
      {props.items.map((s, i) => (
        <rect
          key={i}
          className={`jp-mlops-det-box jp-mlops-det-${s.kind}`}
          data-kind={s.kind}
          x={s.box[0]}
          y={s.box[1]}
          width={s.box[2]}
          height={s.box[3]}
          vectorEffect="non-scaling-stroke"
        >
          <title>{s.title}</title>
        </rect>
      ))}
    </>
  );
}

/** A run's image, fetched only once the element `ref` is put on comes near the viewport. */
function useLazyImage(
  runId: string,
  image: IDetectionImage
): { ref: React.RefObject<HTMLDivElement>; url?: string; error?: string } {
  const ref = useRef<HTMLDivElement>(null);
  const near = useNearViewport(ref);
  return { ref, ...useImage(runId, image.image, near) };
}

/**
 * A run's validation image with its boxes. `size` is the displayed width in CSS pixels;
 * the image keeps its aspect ratio.
 */
export function DetectionImage(props: {
  runId: string;
  image: IDetectionImage;
  mode: BoxMode;
  size: number;
  label: string;
}): JSX.Element {
  const { image, mode, size } = props;
  const { ref, url, error } = useLazyImage(props.runId, image);
  const w = image.width || 1;
  const h = image.height || 1;
  const items = shapes(image, mode);
  return (
    <div
      ref={ref}
      className="jp-mlops-det-image jp-mlops-overlay"
      style={{ width: size, height: Math.round((size * h) / w) }}
      data-testid="detection-image"
      data-image={image.name}
    >
      {url && <img src={url} alt={props.label} loading="lazy" decoding="async" width={size} />}
      {!url && (
        <div
          className={error ? 'jp-mlops-det-placeholder jp-mlops-error' : 'jp-mlops-det-placeholder'}
        >
          {error ?? 'loading…'}
        </div>
      )}
      <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" aria-hidden="true">
        <Boxes items={items} />
      </svg>
    </div>
  );
}

/** One cell cut out of its image with some context around it, its box highlighted. */
export function CellCrop(props: {
  runId: string;
  image: IDetectionImage;
  box: Box | number[];
  kind: BoxKind;
  size: number;
  title: string;
}): JSX.Element {
  const { image, box, size } = props;
  const { ref, url } = useLazyImage(props.runId, image);
  // a square window around the cell, twice its size, so its neighbourhood shows too
  const side = Math.max(box[2], box[3]) * 2 + 8;
  const cx = box[0] + box[2] / 2;
  const cy = box[1] + box[3] / 2;
  const view = `${cx - side / 2} ${cy - side / 2} ${side} ${side}`;
  return (
    <div
      ref={ref}
      className="jp-mlops-det-crop"
      style={{ width: size, height: size }}
      title={props.title}
    >
      <svg viewBox={view} width={size} height={size} role="img" aria-label={props.title}>
        <rect
          className="jp-mlops-det-crop-bg"
          x={cx - side / 2}
          y={cy - side / 2}
          width={side}
          height={side}
        />
        {url && <image href={url} x={0} y={0} width={image.width} height={image.height} />}
        <Boxes items={[{ kind: props.kind, box, title: props.title }]} />
      </svg>
    </div>
  );
}

/** What each box style means. */
export function BoxLegend(props: { kinds?: BoxKind[] }): JSX.Element {
  const kinds = props.kinds ?? (['gt', 'pred', 'missed', 'false'] as BoxKind[]);
  return (
    <ul className="jp-mlops-legend jp-mlops-det-legend" aria-label="Box legend">
      {kinds.map(k => (
        <li key={k}>
          <svg width={28} height={16} viewBox="0 0 28 16" aria-hidden="true">
            <rect className="jp-mlops-det-crop-bg" x={0} y={0} width={28} height={16} />
            <rect
              className={`jp-mlops-det-box jp-mlops-det-${k}`}
              x={4}
              y={3}
              width={20}
              height={10}
            />
          </svg>
          {BOX_LABELS[k]}
        </li>
      ))}
    </ul>
  );
}
