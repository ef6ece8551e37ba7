/**
 * Detection results of an evaluated run in its detail: its images with boxes and an error
 * gallery; and the pieces the comparison of several runs shares (detectionsCompare.tsx).
 *
 * Everything is drawn from the run artifact `eval/detections.json` (see detectionsData.ts);
 * runs without it show nothing here.
 */
import { Button } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { num } from '../format';
import { BoxLegend, CellCrop, DetectionImage } from './detectionImage';
import {
  errorCount,
  errorImages,
  IDetectionImage,
  IDetections,
  loadDetections,
  totals
} from './detectionsData';

const THUMB = 200;
const CROP = 64;
const CROPS_PER_CARD = 6;

/** A run as the detections views name it. */
export interface IDetectionRun {
  runId: string;
  label: string;
  metrics: { [key: string]: number };
}

/** Detection metrics the evaluation logs, in the order the summary shows them. */
const METRICS: [string, string][] = [
  ['map50', 'mAP@.5'],
  ['map50_95', 'mAP@.5:.95'],
  ['precision', 'precision'],
  ['recall', 'recall'],
  ['count_mae', 'count MAE'],
  ['count_rel_error', 'count rel. err.']
];

/** Each run's detections (null: not evaluated), loaded in parallel. */
export function useDetections(runIds: string[]): {
  data: (IDetections | null)[] | null;
  error: string | null;
} {
  const [data, setData] = useState<(IDetections | null)[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    setData(null);
    setError(null);
    Promise.all(runIds.map(loadDetections)).then(
      d => live && setData(d),
      e => live && setError(e.message ?? String(e))
    );
    return () => {
      live = false;
    };
  }, [runIds.join(',')]);
  return { data, error };
}

function Pager(props: {
  page: number;
  pages: number;
  total: number;
  size: number;
  onPage: (p: number) => void;
  what: string;
}): JSX.Element | null {
  const { page, pages, total, size } = props;
  if (pages <= 1) {
    return null;
  }
  return (
    <div className="jp-mlops-pager" data-testid="detections-pager">
      <Button
        minimal
        small
        className="jp-mlops-tab"
        disabled={page === 0}
        onClick={() => props.onPage(page - 1)}
      >
        ‹ previous
      </Button>
      <span>
        {props.what} {page * size + 1}–{Math.min(total, (page + 1) * size)} of {total}
      </span>
      <Button
        minimal
        small
        className="jp-mlops-tab"
        disabled={page >= pages - 1}
        onClick={() => props.onPage(page + 1)}
      >
        next ›
      </Button>
    </div>
  );
}

export function usePage<T>(
  items: T[],
  size: number
): { shown: T[]; pager: (what: string) => JSX.Element | null } {
  const [page, setPage] = useState(0);
  const pages = Math.ceil(items.length / size);
  const current = Math.min(page, Math.max(0, pages - 1));
  return {
    shown: items.slice(current * size, (current + 1) * size),
    pager: what => (
      <Pager
        page={current}
        pages={pages}
        total={items.length}
        size={size}
        onPage={setPage}
        what={what}
      />
    )
  };
}

/** Counts of one image, as a short line. */
export function ImageCounts(props: { image: IDetectionImage }): JSX.Element {
  const im = props.image;
  return (
    <span className="jp-mlops-det-counts" data-testid="image-counts">
      {im.gt.length} cells · {im.matched.length} found ·{' '}
      <span className={im.missed.length ? 'jp-mlops-det-n-missed' : ''}>
        {im.missed.length} missed
      </span>{' '}
      ·{' '}
      <span className={im.false.length ? 'jp-mlops-det-n-false' : ''}>{im.false.length} false</span>
    </span>
  );
}

/** Totals and detection metrics of the runs, one row each. */
export function Summary(props: { runs: IDetectionRun[]; data: IDetections[] }): JSX.Element {
  const rows = props.data.map(totals);
  return (
    <div className="jp-mlops-table-wrap">
      <table className="jp-mlops-table" aria-label="Detection totals">
        <thead>
          <tr>
            <th scope="col">Run</th>
            <th scope="col" className="jp-mlops-num">
              images
            </th>
            <th scope="col" className="jp-mlops-num">
              cells
            </th>
            <th scope="col" className="jp-mlops-num">
              predicted
            </th>
            <th scope="col" className="jp-mlops-num">
              found
            </th>
            <th scope="col" className="jp-mlops-num">
              missed
            </th>
            <th scope="col" className="jp-mlops-num">
              false
            </th>
            {METRICS.map(([k, label]) => (
              <th scope="col" key={k} className="jp-mlops-num">
                {label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.runs.map((r, i) => (
            <tr key={r.runId} data-testid="detection-totals">
              <th scope="row">{r.label}</th>
              <td className="jp-mlops-num">{rows[i].images}</td>
              <td className="jp-mlops-num">{rows[i].gt}</td>
              <td className="jp-mlops-num">{rows[i].pred}</td>
              <td className="jp-mlops-num">{rows[i].matched}</td>
              <td className="jp-mlops-num" data-testid="total-missed">
                {rows[i].missed}
              </td>
              <td className="jp-mlops-num" data-testid="total-false">
                {rows[i].false}
              </td>
              {METRICS.map(([k]) => (
                <td key={k} className="jp-mlops-num">
                  {r.metrics[k] === undefined ? '—' : num(r.metrics[k])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      <div className="jp-mlops-muted-inline">
        IoU threshold {props.data[0].iou_threshold}
        {props.data
          .map((d, i) => ` · ${props.runs[i].label}: score threshold ${d.score_threshold}`)
          .join('')}
      </div>
    </div>
  );
}

/** One run's images with missed or false cells, most errors first, with crops of each error. */
export function ErrorGallery(props: { run: IDetectionRun; data: IDetections }): JSX.Element {
  const { run, data } = props;
  const images = errorImages(data);
  const { shown, pager } = usePage(images, 12);
  const t = totals(data);
  return (
    <section
      className="jp-mlops-det-gallery"
      data-testid="error-gallery"
      data-run={run.label}
      aria-label={`Errors of ${run.label}`}
    >
      <h4>
        {run.label}:{' '}
        <span data-testid="gallery-summary">
          {t.missed} missed · {t.false} false in {images.length} of {t.images} images
        </span>
      </h4>
      {images.length === 0 && <div className="jp-mlops-muted">No missed or false cells.</div>}
      <div className="jp-mlops-det-cards">
        {shown.map(im => (
          <figure
            key={im.name}
            className="jp-mlops-det-card"
            data-testid="error-card"
            data-image={im.name}
          >
            <figcaption>
              <strong>{im.name}</strong>{' '}
              <span className="jp-mlops-det-errors" data-testid="error-count">
                {errorCount(im)} {errorCount(im) === 1 ? 'error' : 'errors'}
              </span>
              <br />
              <ImageCounts image={im} />
            </figcaption>
            <DetectionImage
              runId={run.runId}
              image={im}
              mode="errors"
              size={THUMB}
              label={`${im.name} errors, ${run.label}`}
            />
            <div className="jp-mlops-det-crops">
              {[
                ...im.missed.map(g => ({
                  kind: 'missed' as const,
                  box: im.gt[g],
                  title: `missed cell ${g} in ${im.name}`
                })),
                ...im.false.map(p => ({
                  kind: 'false' as const,
                  box: im.pred[p],
                  title: `false cell ${p} in ${im.name}`
                }))
              ]
                .filter(c => c.box)
                .slice(0, CROPS_PER_CARD)
                .map((c, i) => (
                  <CellCrop
                    key={i}
                    runId={run.runId}
                    image={im}
                    box={c.box}
                    kind={c.kind}
                    size={CROP}
                    title={c.title}
                  />
                ))}
              {errorCount(im) > CROPS_PER_CARD && (
                <span className="jp-mlops-muted-inline">
                  +{errorCount(im) - CROPS_PER_CARD} more
                </span>
              )}
            </div>
          </figure>
        ))}
      </div>
      {pager('images')}
    </section>
  );
}

/** Every image of one run, with all boxes. */
function ImageGrid(props: { run: IDetectionRun; data: IDetections }): JSX.Element {
  const { shown, pager } = usePage(props.data.images, 12);
  return (
    <div>
      <div className="jp-mlops-det-cards">
        {shown.map(im => (
          <figure key={im.name} className="jp-mlops-det-card">
            <figcaption>
              <strong>{im.name}</strong>
              <br />
              <ImageCounts image={im} />
            </figcaption>
            <DetectionImage
              runId={props.run.runId}
              image={im}
              mode="all"
              size={THUMB}
              label={`${im.name}, ${props.run.label}`}
            />
          </figure>
        ))}
      </div>
      {pager('images')}
    </div>
  );
}

export function Tabs<T extends string>(props: {
  tabs: [T, string][];
  value: T;
  onChange: (t: T) => void;
  label: string;
}): JSX.Element {
  return (
    <div role="tablist" aria-label={props.label} className="jp-mlops-tabs">
      {props.tabs.map(([t, label]) => (
        <Button
          minimal
          small
          key={t}
          role="tab"
          aria-selected={props.value === t}
          className={`jp-mlops-tab${props.value === t ? ' jp-mod-active' : ''}`}
          onClick={() => props.onChange(t)}
        >
          {label}
        </Button>
      ))}
    </div>
  );
}

/** The "Detections" section of a run's detail; nothing when the run was not evaluated. */
export function RunDetections(props: { run: IDetectionRun }): JSX.Element | null {
  const { data, error } = useDetections([props.run.runId]);
  const [tab, setTab] = useState<'errors' | 'images'>('errors');
  if (error) {
    return (
      <section className="jp-mlops-kv">
        <h3>Detections</h3>
        <ErrorLine error={error} />
      </section>
    );
  }
  if (!data || !data[0]) {
    return null;
  }
  const d = data[0];
  return (
    <section className="jp-mlops-kv jp-mlops-detections" data-testid="run-detections">
      <h3>Detections</h3>
      <Summary runs={[props.run]} data={[d]} />
      <BoxLegend />
      <Tabs
        label="Detections"
        tabs={[
          ['errors', `Error gallery (${errorImages(d).length})`],
          ['images', `All images (${d.images.length})`]
        ]}
        value={tab}
        onChange={setTab}
      />
      {tab === 'errors' ? (
        <ErrorGallery run={props.run} data={d} />
      ) : (
        <ImageGrid run={props.run} data={d} />
      )}
    </section>
  );
}
