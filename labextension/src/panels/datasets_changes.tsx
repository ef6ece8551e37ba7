import React from 'react';

import { IObjectDiff, IObjectDiffImage, ISplitMoves, objectUrl } from '../api/datasets';

export type {
  IAnnotationChange,
  IObjectBox,
  IObjectDiff,
  IObjectDiffImage,
  ISplitMoves
} from '../api/datasets';

const SPLITS = ['train', 'val', 'test'];

function previewUrl(hash: string): string {
  return objectUrl(hash, 'preview');
}

/** Split sizes as one stacked bar (people compare them), with the counts in words. */
export function SplitBar(props: { splits: Record<string, number> }): JSX.Element {
  const total = SPLITS.reduce((n, k) => n + (props.splits[k] || 0), 0);
  if (!total) {
    return <span>none</span>;
  }
  return (
    <span className="jp-mlops-ds-splitbar" data-testid="split-sizes">
      <span className="jp-mlops-ds-splitbar-track" role="img" aria-label="Images per split">
        {SPLITS.map(k =>
          props.splits[k] ? (
            <span
              key={k}
              className={`jp-mlops-ds-split-${k}`}
              style={{ width: `${(100 * props.splits[k]) / total}%` }}
              title={`${k}: ${props.splits[k]} (${Math.round((100 * props.splits[k]) / total)}%)`}
            />
          ) : null
        )}
      </span>
      <span className="jp-mlops-ds-splitbar-legend">
        {SPLITS.filter(k => props.splits[k]).map(k => (
          <span key={k}>
            <i className={`jp-mlops-ds-split-${k}`} /> {k} {props.splits[k]}
          </span>
        ))}
      </span>
    </span>
  );
}

/** "Since v3: 1,000 kept, 0 moved" and which moves, if any. */
export function SplitMovesLine(props: {
  parent?: string;
  moves?: ISplitMoves;
}): JSX.Element | null {
  const m = props.moves;
  if (!m) {
    return null;
  }
  const added = Object.values(m.added).reduce((a, b) => a + b, 0);
  const removed = Object.values(m.removed).reduce((a, b) => a + b, 0);
  const moves = Object.entries(m.by_move).map(([k, n]) => `${k.replace('->', ' → ')} ${n}`);
  return (
    <span data-testid="split-moves" className={m.moved ? 'jp-mlops-ds-moved' : undefined}>
      {props.parent ? `since ${props.parent}: ` : ''}
      {m.kept} kept images, {m.moved} moved{moves.length ? ` (${moves.join(', ')})` : ''}
      {added ? ` · ${added} added` : ''}
      {removed ? ` · ${removed} removed` : ''}
    </span>
  );
}

function when(at: number): string {
  return new Date(at * 1000).toLocaleString();
}

/** One image with its object changes drawn over it: added green, removed red (dashed),
 * moved orange (dashed where it was, solid where it is). */
function ObjectChangeCard(props: { image: IObjectDiffImage }): JSX.Element {
  const im = props.image;
  const w = im.width || 1;
  const h = im.height || 1;
  const o = im.objects;
  return (
    <figure className="jp-mlops-ds-objchange" data-path={im.path}>
      <div className="jp-mlops-ds-canvas jp-mlops-overlay" style={{ aspectRatio: `${w} / ${h}` }}>
        <img src={previewUrl(im.hash)} loading="lazy" alt={im.path} />
        {o && (
          <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" data-testid="object-changes">
            {o.removed.map((b, i) => (
              <rect key={'r' + i} className="removed" x={b.x} y={b.y} width={b.w} height={b.h}>
                <title>removed {b.label || ''}</title>
              </rect>
            ))}
            {o.moved.map((m, i) => (
              <React.Fragment key={'m' + i}>
                <rect
                  className="moved-from"
                  x={m.old.x}
                  y={m.old.y}
                  width={m.old.w}
                  height={m.old.h}
                />
                <rect className="moved" x={m.new.x} y={m.new.y} width={m.new.w} height={m.new.h}>
                  <title>
                    moved {m.new.label || ''} (overlap {Math.round(m.iou * 100)}%)
                  </title>
                </rect>
              </React.Fragment>
            ))}
            {o.added.map((b, i) => (
              <rect key={'a' + i} className="added" x={b.x} y={b.y} width={b.w} height={b.h}>
                <title>added {b.label || ''}</title>
              </rect>
            ))}
          </svg>
        )}
      </div>
      <figcaption>
        <strong>{im.path}</strong>
        <span className="jp-mlops-muted">
          {' '}
          +{im.added} −{im.removed} moved {im.moved} · {im.unchanged} unchanged
        </span>
        {(im.changes || []).map(c => (
          <div key={c.version} className="jp-mlops-muted" data-testid="annotation-change">
            {c.version} by {c.author} with {c.tool || 'an unnamed tool'} · {when(c.at)}
            {c.parent ? ` (from ${c.parent})` : ''}
          </div>
        ))}
      </figcaption>
    </figure>
  );
}

/** The per-object changes of a diff, image by image. */
export function ObjectChanges(props: { objects?: IObjectDiff }): JSX.Element | null {
  const d = props.objects;
  if (!d || !d.images.length) {
    return null;
  }
  const t = d.totals;
  return (
    <div data-testid="dataset-object-changes">
      <p className="jp-mlops-muted">
        Annotated objects: {t.added} added, {t.removed} removed, {t.moved} moved on {t.images}{' '}
        images
        {d.truncated ? ' (boxes drawn for the first 200)' : ''}
        <span className="jp-mlops-ds-legend">
          <i className="added" /> added <i className="removed" /> removed <i className="moved" />{' '}
          moved
        </span>
      </p>
      <div className="jp-mlops-ds-objchanges">
        {d.images.map(im => (
          <ObjectChangeCard key={im.path} image={im} />
        ))}
      </div>
    </div>
  );
}
