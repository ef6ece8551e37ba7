/**
 * The "Detections" comparison of 2-8 evaluated runs in the compare view (main area): each
 * run's totals and metrics, the per-image AP@.5 and count error of every run on the images
 * they all evaluated, ordered by how much the runs disagree, with their overlays side by
 * side; and each run's error gallery.
 *
 * Drawn from the run artifact `eval/detections.json` (docs/cell-detection.md), which any
 * detector writes through `jupyter_mlops.demo.evaluation.write_detections`.
 */
import { HTMLSelect } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { BoxLegend, DetectionImage } from './detectionImage';
import {
  ErrorGallery,
  IDetectionRun,
  ImageCounts,
  Summary,
  Tabs,
  useDetections,
  usePage
} from './detections';
import {
  countError,
  disagreement,
  errorCount,
  IDetectionImage,
  IDetections,
  imageAp50
} from './detectionsData';
import { SERIES_COLORS } from './lineChart';

/** Runs the comparison draws at most (each image row holds one overlay per run). */
export const MAX_DETECTION_RUNS = 8;

type Order = 'disagreement' | 'errors' | 'name';

/** Overlay size by number of runs, so a row of 8 still fits a laptop screen. */
function thumbSize(runs: number): number {
  return runs <= 2 ? 240 : runs <= 4 ? 180 : 130;
}

function fmtAp(v: number | null): string {
  return v === null ? '—' : v.toFixed(2);
}

function fmtCount(v: number): string {
  return v > 0 ? `+${v}` : `${v}`;
}

/** Per-image AP@.5 of each run as bars, one group per image: where the runs part ways. */
function DisagreementChart(props: {
  runs: IDetectionRun[];
  rows: IDetectionImage[][];
}): JSX.Element {
  const rows = props.rows.slice(0, 12);
  const n = props.runs.length;
  const bar = Math.max(3, Math.floor(48 / n));
  const group = bar * n + 10;
  const height = 90;
  return (
    <figure className="jp-mlops-det-chart" aria-label="Per-image AP@.5 of each run">
      <svg
        width={rows.length * group + 40}
        height={height + 40}
        role="img"
        data-testid="disagreement-chart"
      >
        <title>Per-image AP@.5 of each run, images where they disagree most first</title>
        <line
          x1={30}
          x2={rows.length * group + 34}
          y1={height + 4}
          y2={height + 4}
          className="jp-mlops-chart-axis"
        />
        <text x={26} y={10} textAnchor="end" className="jp-mlops-chart-tick">
          1
        </text>
        <text x={26} y={height + 4} textAnchor="end" className="jp-mlops-chart-tick">
          0
        </text>
        {rows.map((ims, g) => (
          <g key={ims[0].name} transform={`translate(${34 + g * group},0)`}>
            {ims.map((im, i) => {
              const ap = imageAp50(im) ?? 0;
              return (
                <rect
                  key={i}
                  x={i * bar}
                  y={4 + height * (1 - ap)}
                  width={bar - 1}
                  height={Math.max(1, height * ap)}
                  fill={SERIES_COLORS[i % SERIES_COLORS.length]}
                >
                  <title>{`${im.name}, ${props.runs[i].label}: AP@.5 ${fmtAp(imageAp50(im))}`}</title>
                </rect>
              );
            })}
            <text
              x={(bar * n) / 2}
              y={height + 18}
              textAnchor="middle"
              className="jp-mlops-chart-tick"
            >
              {ims[0].name.slice(-4)}
            </text>
          </g>
        ))}
      </svg>
      <figcaption className="jp-mlops-muted-inline">
        AP@.5 per image and run, the {rows.length} images the runs disagree on most
      </figcaption>
    </figure>
  );
}

/** One row per image every run evaluated: each run's numbers and overlay. */
function ImageRows(props: { runs: IDetectionRun[]; data: IDetections[] }): JSX.Element {
  const [order, setOrder] = useState<Order>('disagreement');
  const { runs, data } = props;
  const maps = data.map(d => new Map(d.images.map(im => [im.name, im])));
  const rows = data[0].images
    .filter(im => maps.every(m => m.has(im.name)))
    .map(im => maps.map(m => m.get(im.name)!));
  const union = new Set(data.flatMap(d => d.images.map(im => im.name))).size;
  const key = (r: IDetectionImage[]) =>
    order === 'disagreement'
      ? disagreement(r)
      : order === 'errors'
        ? r.reduce((s, im) => s + errorCount(im), 0)
        : 0;
  const sorted = [...rows].sort((x, y) => key(y) - key(x) || x[0].name.localeCompare(y[0].name));
  const byDisagreement = [...rows].sort(
    (x, y) => disagreement(y) - disagreement(x) || x[0].name.localeCompare(y[0].name)
  );
  const { shown, pager } = usePage(sorted, 6);
  const size = thumbSize(runs.length);
  const columns = { gridTemplateColumns: `130px repeat(${runs.length}, ${size + 16}px)` };
  return (
    <div data-testid="side-by-side">
      <DisagreementChart runs={runs} rows={byDisagreement} />
      <div className="jp-mlops-toolbar">
        <label className="jp-mlops-check">
          Order:{' '}
          <HTMLSelect
            className="jp-mlops-select"
            value={order}
            onChange={e => setOrder(e.target.value as Order)}
            aria-label="Order images"
          >
            <option value="disagreement">where the runs disagree most first</option>
            <option value="errors">most errors (all runs) first</option>
            <option value="name">by image name</option>
          </HTMLSelect>
        </label>
        <span className="jp-mlops-muted-inline">
          {rows.length} images evaluated by all {runs.length} runs
          {union > rows.length ? ` (${union - rows.length} evaluated by only some, not shown)` : ''}
        </span>
      </div>
      <div className="jp-mlops-det-pairs">
        <div className="jp-mlops-det-pair-head" style={columns}>
          <span />
          {runs.map((r, i) => (
            <strong key={r.runId}>
              <span
                className="jp-mlops-swatch"
                style={{ background: SERIES_COLORS[i % SERIES_COLORS.length] }}
              />
              {r.label}
            </strong>
          ))}
        </div>
        {shown.map(ims => (
          <div
            key={ims[0].name}
            className="jp-mlops-det-pair"
            style={columns}
            data-testid="detection-pair"
            data-image={ims[0].name}
          >
            <div className="jp-mlops-det-pair-name">
              <strong>{ims[0].name}</strong>
              <div className="jp-mlops-muted-inline">{ims[0].gt.length} cells</div>
              <div className="jp-mlops-muted-inline" data-testid="disagreement">
                disagreement {disagreement(ims).toFixed(2)}
              </div>
            </div>
            {ims.map((im, i) => (
              <figure key={i} className="jp-mlops-det-card" data-run={runs[i].label}>
                <DetectionImage
                  runId={runs[i].runId}
                  image={im}
                  mode="all"
                  size={size}
                  label={`${im.name}, ${runs[i].label}`}
                />
                <figcaption>
                  <span className="jp-mlops-det-counts" data-testid="image-scores">
                    AP@.5 {fmtAp(imageAp50(im))} · count {fmtCount(countError(im))}
                  </span>
                  <br />
                  <ImageCounts image={im} />
                </figcaption>
              </figure>
            ))}
          </div>
        ))}
      </div>
      {pager('images')}
    </div>
  );
}

/** The comparison; a short note when some runs were not evaluated or there are too many. */
export function CompareDetections(props: { runs: IDetectionRun[] }): JSX.Element | null {
  const runs = props.runs.slice(0, MAX_DETECTION_RUNS);
  const { data, error } = useDetections(runs.map(r => r.runId));
  const [tab, setTab] = useState<'pairs' | 'errors'>('pairs');
  if (error) {
    return <ErrorLine error={error} />;
  }
  if (!data) {
    return null;
  }
  const missing = runs.filter((_, i) => !data[i]);
  if (missing.length === runs.length) {
    return null;
  }
  return (
    <section className="jp-mlops-kv jp-mlops-detections" data-testid="compare-detections">
      <h3>Detections</h3>
      {props.runs.length > MAX_DETECTION_RUNS && (
        <div className="jp-mlops-muted">
          Detections of the first {MAX_DETECTION_RUNS} of {props.runs.length} runs: select at most{' '}
          {MAX_DETECTION_RUNS} to compare them all.
        </div>
      )}
      {missing.length > 0 ? (
        <div className="jp-mlops-muted">
          {missing.map(r => r.label).join(', ')} logged no <code>eval/detections.json</code>:
          nothing to compare.
        </div>
      ) : (
        <>
          <Summary runs={runs} data={data as IDetections[]} />
          <BoxLegend />
          <Tabs
            label="Detections comparison"
            tabs={[
              ['pairs', 'Side by side'],
              ['errors', 'Error galleries']
            ]}
            value={tab}
            onChange={setTab}
          />
          {tab === 'pairs' ? (
            <ImageRows runs={runs} data={data as IDetections[]} />
          ) : (
            <div className="jp-mlops-det-galleries">
              {runs.map((r, i) => (
                <ErrorGallery key={r.runId} run={r} data={data[i]!} />
              ))}
            </div>
          )}
        </>
      )}
    </section>
  );
}
