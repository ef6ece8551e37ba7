/**
 * A small SVG line chart: one line per run over steps, axes with round ticks, a legend and a
 * hover read-out. Colours are a categorical palette readable on light and dark themes; text,
 * axes and grid take JupyterLab's theme variables.
 */
import React, { useMemo, useState } from 'react';

/** One line. */
export interface ISeries {
  id: string;
  label: string;
  points: [number, number][];
  /** Defaults to the palette colour of the series' index. */
  color?: string;
}

export const SERIES_COLORS = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac'
];

const W = 560;
const H = 240;
const M = { left: 56, right: 12, top: 10, bottom: 28 };

/** About `count` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  if (!isFinite(lo) || !isFinite(hi)) {
    return [];
  }
  if (lo === hi) {
    return [lo];
  }
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map(m => m * mag).find(s => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  }
  return out;
}

function fmt(v: number): string {
  if (v === 0) {
    return '0';
  }
  const a = Math.abs(v);
  return a >= 1e5 || a < 1e-3 ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

/** A vertical line across a chart at `x` (a version switch, a rollback), labelled. */
export interface IMark {
  x: number;
  label: string;
}

export function LineChart(props: {
  title: string;
  series: ISeries[];
  /** The x axis' name (default "step"). */
  xLabel?: string;
  marks?: IMark[];
}): JSX.Element {
  const { series, title } = props;
  const xLabel = props.xLabel ?? 'step';
  const [hover, setHover] = useState<number | null>(null);
  const all = series.flatMap(s => s.points);
  const bounds = useMemo(() => {
    const xs = all.map(p => p[0]);
    const ys = all.map(p => p[1]).filter(v => isFinite(v));
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (y0 === y1) {
      [y0, y1] = [y0 - 1, y1 + 1];
    }
    const pad = (y1 - y0) * 0.05;
    return { x0: Math.min(...xs), x1: Math.max(...xs), y0: y0 - pad, y1: y1 + pad };
  }, [series]);
  if (all.length === 0) {
    return <div className="jp-mlops-muted">No points logged for {title}.</div>;
  }
  const { x0, x1, y0, y1 } = bounds;
  const sx = (x: number) =>
    M.left +
    (x1 === x0 ? (W - M.left - M.right) / 2 : ((x - x0) / (x1 - x0)) * (W - M.left - M.right));
  const sy = (y: number) => M.top + (1 - (y - y0) / (y1 - y0)) * (H - M.top - M.bottom);
  const onMove = (e: React.MouseEvent<SVGSVGElement>) => {
    const box = e.currentTarget.getBoundingClientRect();
    const x = ((e.clientX - box.left) / box.width) * W;
    const step = x0 + ((x - M.left) / (W - M.left - M.right)) * (x1 - x0);
    setHover(Math.min(x1, Math.max(x0, Math.round(step))));
  };
  const at = (s: ISeries) => {
    if (hover === null) {
      return undefined;
    }
    let best: [number, number] | undefined;
    for (const p of s.points) {
      if (p[0] <= hover && (!best || p[0] >= best[0])) {
        best = p;
      }
    }
    return best;
  };
  return (
    <figure className="jp-mlops-chart" data-testid={`chart-${title}`}>
      <figcaption className="jp-mlops-chart-title">{title}</figcaption>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        role="img"
        aria-label={`${title} over ${xLabel} for ${series.length} series`}
        onMouseMove={onMove}
        onMouseLeave={() => setHover(null)}
      >
        {ticks(y0, y1).map(t => (
          <g key={`y${t}`}>
            <line
              className="jp-mlops-chart-grid"
              x1={M.left}
              x2={W - M.right}
              y1={sy(t)}
              y2={sy(t)}
            />
            <text className="jp-mlops-chart-tick" x={M.left - 4} y={sy(t) + 3} textAnchor="end">
              {fmt(t)}
            </text>
          </g>
        ))}
        {ticks(x0, x1, 6)
          .filter(t => Number.isInteger(t) || x1 - x0 < 6)
          .map(t => (
            <text
              key={`x${t}`}
              className="jp-mlops-chart-tick"
              x={sx(t)}
              y={H - M.bottom + 14}
              textAnchor="middle"
            >
              {fmt(t)}
            </text>
          ))}
        <line
          className="jp-mlops-chart-axis"
          x1={M.left}
          x2={W - M.right}
          y1={H - M.bottom}
          y2={H - M.bottom}
        />
        <line
          className="jp-mlops-chart-axis"
          x1={M.left}
          x2={M.left}
          y1={M.top}
          y2={H - M.bottom}
        />
        <text className="jp-mlops-chart-tick" x={W - M.right} y={H - 2} textAnchor="end">
          {xLabel}
        </text>
        {(props.marks ?? [])
          .filter(m => m.x >= x0 && m.x <= x1)
          .map((m, i) => (
            <g key={`m${i}`} data-testid="chart-mark">
              <line
                className="jp-mlops-chart-mark"
                x1={sx(m.x)}
                x2={sx(m.x)}
                y1={M.top}
                y2={H - M.bottom}
              />
              <text
                className="jp-mlops-chart-tick"
                x={sx(m.x) > W / 2 ? sx(m.x) - 3 : sx(m.x) + 3}
                y={M.top + 9 + (i % 4) * 11}
                textAnchor={sx(m.x) > W / 2 ? 'end' : 'start'}
              >
                {m.label}
              </text>
            </g>
          ))}
        {series.map((s, i) => (
          <g key={s.id} data-testid="chart-series">
            <polyline
              fill="none"
              stroke={s.color ?? SERIES_COLORS[i % SERIES_COLORS.length]}
              strokeWidth={2}
              points={s.points
                .filter(p => isFinite(p[1]))
                .map(p => `${sx(p[0])},${sy(p[1])}`)
                .join(' ')}
            />
            {s.points.length === 1 && (
              <circle
                cx={sx(s.points[0][0])}
                cy={sy(s.points[0][1])}
                r={3}
                fill={s.color ?? SERIES_COLORS[i % SERIES_COLORS.length]}
              />
            )}
          </g>
        ))}
        {hover !== null && (
          <line
            className="jp-mlops-chart-hover"
            x1={sx(hover)}
            x2={sx(hover)}
            y1={M.top}
            y2={H - M.bottom}
          />
        )}
      </svg>
      <ul className="jp-mlops-legend">
        {series.map((s, i) => {
          const p = at(s);
          return (
            <li key={s.id}>
              <span
                className="jp-mlops-swatch"
                style={{ background: s.color ?? SERIES_COLORS[i % SERIES_COLORS.length] }}
              />
              {s.label}
              {p && (
                <span className="jp-mlops-muted-inline">
                  {' '}
                  · {xLabel} {p[0]}: {fmt(p[1])}
                </span>
              )}
            </li>
          );
        })}
      </ul>
    </figure>
  );
}
