import React, { useCallback, useState } from 'react';

import { usePollLoop } from '../components/hooks';
import { num } from '../format';
import { getPipeline, getSweep, ISweep } from '../api/jobs';
import { StateBadge } from './job_detail';

const DONE = new Set(['succeeded', 'failed', 'cancelled']);

/** Poll `load(id)` every second until the record reaches a final state. */
function usePolled<T extends { state: string }>(
  load: (id: number) => Promise<T>,
  id: number
): [T | null, string | null] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const poll = useCallback(async () => {
    try {
      const d = await load(id);
      setData(d);
      setError(null);
      return !DONE.has(d.state);
    } catch (e: any) {
      setError(e.message);
      return true;
    }
  }, [load, id]);
  usePollLoop(poll, 1000);
  return [data, error];
}

/** Trial values (dots) and the best so far (a step line), in the order trials finished. */
function BestSoFarChart(props: { sweep: ISweep }): JSX.Element {
  const points = props.sweep.history.filter(h => h.value !== null || h.best !== null);
  const W = 420;
  const H = 160;
  const P = 28;
  const values = points.flatMap(p => [p.value, p.best]).filter(v => v !== null) as number[];
  if (values.length === 0) {
    return <div className="jp-mlops-muted">No finished trial yet.</div>;
  }
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const span = hi - lo || 1;
  const x = (i: number) => P + ((W - 2 * P) * i) / Math.max(1, points.length - 1);
  const y = (v: number) => H - P - ((H - 2 * P) * (v - lo)) / span;
  const best = points
    .map((p, i) => (p.best !== null ? `${x(i)},${y(p.best)}` : ''))
    .filter(Boolean)
    .join(' ');
  return (
    <svg
      className="jp-mlops-chart"
      width={W}
      height={H}
      role="img"
      aria-label={`best ${props.sweep.metric} so far`}
    >
      <line x1={P} y1={H - P} x2={W - P} y2={H - P} className="jp-mlops-axis" />
      <line x1={P} y1={P} x2={P} y2={H - P} className="jp-mlops-axis" />
      <text x={2} y={P} className="jp-mlops-chart-label">
        {hi.toPrecision(3)}
      </text>
      <text x={2} y={H - P} className="jp-mlops-chart-label">
        {lo.toPrecision(3)}
      </text>
      <text x={W / 2} y={H - 6} className="jp-mlops-chart-label">
        trials (finished order)
      </text>
      <polyline points={best} className="jp-mlops-chart-best" />
      {points.map((p, i) =>
        p.value !== null ? (
          <circle
            key={i}
            cx={x(i)}
            cy={y(p.value)}
            r={4}
            className={`jp-mlops-chart-dot jp-mlops-job-${p.state}`}
          >
            <title>
              trial {p.number}: {p.value} ({p.state})
            </title>
          </circle>
        ) : null
      )}
    </svg>
  );
}

/** A sweep: trials table, best-so-far chart, best parameters. */
export function SweepView(props: { sweepId: number; openJob: (id: number) => void }): JSX.Element {
  const [sweep, error] = usePolled(getSweep, props.sweepId);
  if (!sweep) {
    return <div className="jp-mlops-muted">{error || 'Loading sweep…'}</div>;
  }
  const names = sweep.trials.length ? Object.keys(sweep.trials[0].params) : [];
  return (
    <div className="jp-mlops-job-detail" data-testid="sweep-detail">
      <h2>
        Sweep #{sweep.id} · {sweep.job.path} <StateBadge state={sweep.state} />
      </h2>
      <div className="jp-mlops-muted">
        {sweep.direction} {sweep.metric} · {sweep.sampler} sampler · {sweep.pruner} pruning ·{' '}
        {sweep.asked} of {sweep.n_trials} trials asked
      </div>
      {sweep.best && (
        <div className="jp-mlops-best" data-testid="sweep-best">
          Best {sweep.metric} <strong>{Number(sweep.best.value).toPrecision(4)}</strong> (trial{' '}
          {sweep.best.number}):{' '}
          <code>
            {Object.entries(sweep.best.params)
              .map(([k, v]) => `${k}=${typeof v === 'number' ? num(v) : v}`)
              .join(' ')}
          </code>
        </div>
      )}
      <BestSoFarChart sweep={sweep} />
      <table className="jp-mlops-table" aria-label="Trials">
        <thead>
          <tr>
            <th>#</th>
            <th>State</th>
            {names.map(n => (
              <th key={n}>{n}</th>
            ))}
            <th>{sweep.metric}</th>
          </tr>
        </thead>
        <tbody>
          {sweep.trials.map(t => (
            <tr key={t.number} onClick={() => props.openJob(t.job_id)} title={t.reason}>
              <td>{t.number}</td>
              <td>
                <StateBadge state={t.state} />
              </td>
              {names.map(n => (
                <td key={n}>
                  {typeof t.params[n] === 'number' ? num(t.params[n]) : String(t.params[n])}
                </td>
              ))}
              <td>{t.value === null ? '' : Number(t.value).toPrecision(4)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A pipeline: its steps as a graph (columns by dependency depth), each with its status. */
export function PipelineView(props: {
  pipelineId: number;
  openJob: (id: number) => void;
}): JSX.Element {
  const [p, error] = usePolled(getPipeline, props.pipelineId);
  if (!p) {
    return <div className="jp-mlops-muted">{error || 'Loading pipeline…'}</div>;
  }
  const depth: Record<string, number> = {};
  const byName = Object.fromEntries(p.steps.map(s => [s.name, s]));
  const depthOf = (n: string): number =>
    depth[n] ?? (depth[n] = Math.max(-1, ...byName[n].needs.map(depthOf)) + 1);
  p.steps.forEach(s => depthOf(s.name));
  const rows: Record<number, number> = {};
  const pos: Record<string, { x: number; y: number }> = {};
  const BW = 150;
  const BH = 44;
  p.steps.forEach(s => {
    const d = depth[s.name];
    const r = rows[d] ?? 0;
    rows[d] = r + 1;
    pos[s.name] = { x: 16 + d * (BW + 50), y: 16 + r * (BH + 24) };
  });
  const W = 32 + (Math.max(...Object.values(depth)) + 1) * (BW + 50);
  const H = 32 + Math.max(...Object.values(rows)) * (BH + 24);
  return (
    <div className="jp-mlops-job-detail" data-testid="pipeline-detail">
      <h2>
        Pipeline #{p.id} · {p.name} <StateBadge state={p.state} />
      </h2>
      {p.schedule && (
        <div className="jp-mlops-muted">
          schedule <code>{p.schedule}</code>
          {p.next_at && ` · next ${new Date(p.next_at * 1000).toLocaleString()}`}
        </div>
      )}
      <svg className="jp-mlops-graph" width={W} height={H} role="img" aria-label="Pipeline graph">
        {p.steps.flatMap(s =>
          s.needs.map(d => (
            <line
              key={`${d}-${s.name}`}
              x1={pos[d].x + BW}
              y1={pos[d].y + BH / 2}
              x2={pos[s.name].x}
              y2={pos[s.name].y + BH / 2}
              className="jp-mlops-graph-edge"
            />
          ))
        )}
        {p.steps.map(s => (
          <g
            key={s.name}
            transform={`translate(${pos[s.name].x},${pos[s.name].y})`}
            className={`jp-mlops-graph-node jp-mlops-job-${s.state}`}
            onClick={() => s.job_id && props.openJob(s.job_id)}
            data-step={s.name}
            data-state={s.state}
          >
            <title>{s.reason || s.run}</title>
            <rect width={BW} height={BH} rx={4} />
            <text x={8} y={18} className="jp-mlops-graph-name">
              {s.name}
            </text>
            <text x={8} y={35} className="jp-mlops-graph-state">
              {s.state}
            </text>
          </g>
        ))}
      </svg>
      <ul className="jp-mlops-job-list">
        {p.steps.map(s => (
          <li key={s.name} className="jp-mlops-job-line">
            <StateBadge state={s.state} /> {s.name}: <code>{s.run}</code>
            {s.reason && <span className="jp-mlops-job-reason"> {s.reason}</span>}
          </li>
        ))}
      </ul>
    </div>
  );
}
