/**
 * A deployment's monitoring view (main area): traffic, latency, errors and rows per call over
 * the last hour, day or week, per version, with switches and rollbacks marked; what the model
 * sees against its training data (drift per feature); and the opt-in input recording, said
 * plainly. Data: `deployments/<name>/metrics|drift|monitoring` of the control plane.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Button, InputGroup } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { CheckField } from '../components/fields';
import { openInMainArea } from '../components/mainArea';
import { IMark, ISeries, LineChart, SERIES_COLORS } from '../experiments/lineChart';
import {
  getDrift,
  getMetrics,
  IDrift,
  IMetrics,
  IMonitoringSettings,
  ITrafficNumbers,
  setMonitoring
} from '../api/deployments';

const WINDOWS: [string, string][] = [
  ['1h', 'Last hour'],
  ['1d', 'Last day'],
  ['7d', 'Last week']
];
const UNIT: Record<string, [number, string]> = {
  '1h': [60, 'minutes'],
  '1d': [3600, 'hours'],
  '7d': [86400, 'days']
};

function fmtMs(v: number | null | undefined): string {
  return v === null || v === undefined ? '–' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`;
}

/** Charts of one metric: a series per version, x in minutes/hours/days since the window began. */
function versionSeries(
  m: IMetrics,
  pick: (p: ITrafficNumbers) => number | null,
  zeroFill: boolean,
  suffix = ''
): ISeries[] {
  const [unit] = UNIT[m.window];
  const start = m.from - (m.from % m.step_s);
  const steps = Math.ceil((m.to - start) / m.step_s); // up to the point holding "now"
  return m.versions.map((v, i) => {
    const at = new Map(v.points.map(p => [Math.round((p.t - start) / m.step_s), p]));
    const points: [number, number][] = [];
    for (let k = 0; k <= steps; k++) {
      const p = at.get(k);
      const y = p ? pick(p) : zeroFill ? 0 : null;
      if (y !== null && y !== undefined) {
        points.push([Number(((k * m.step_s) / unit).toFixed(2)), y]);
      }
    }
    return {
      id: `${v.version}${suffix}`,
      label: `version ${v.version}${suffix}`,
      points,
      color: SERIES_COLORS[i % 10]
    };
  });
}

function marks(m: IMetrics): IMark[] {
  const [unit] = UNIT[m.window];
  const start = m.from - (m.from % m.step_s);
  return m.events
    .filter(e => ['switch', 'rollback', 'start', 'failed', 'restarted'].includes(e.kind))
    .map(e => ({
      x: Number(((e.at - start) / unit).toFixed(2)),
      label: `${e.kind} → v${e.version ?? '?'}`
    }));
}

function Tile(props: { label: string; value: string; warn?: boolean }): JSX.Element {
  return (
    <div className={`jp-mlops-tile${props.warn ? ' jp-mlops-tile-warn' : ''}`}>
      <div className="jp-mlops-tile-value">{props.value}</div>
      <div className="jp-mlops-tile-label">{props.label}</div>
    </div>
  );
}

/** One number of a point, drawn as a series per version (`suffix` tells the numbers apart). */
interface IMetricLine {
  pick: (p: ITrafficNumbers) => number | null;
  suffix?: string;
}

/**
 * One chart of the window: every line per version, coloured in turn, with the switches and
 * rollbacks marked. `zeroFill`: a point without calls counts 0 (a rate or a count), rather
 * than leaving a gap (a latency or a mean has no value there).
 */
function MetricChart(props: {
  m: IMetrics;
  title: string;
  lines: IMetricLine[];
  zeroFill: boolean;
}): JSX.Element {
  const { m, lines, zeroFill } = props;
  const series = lines
    .flatMap(line => versionSeries(m, line.pick, zeroFill, line.suffix))
    .map((s, i) => ({ ...s, color: SERIES_COLORS[i % 10] }));
  return (
    <LineChart title={props.title} series={series} xLabel={UNIT[m.window][1]} marks={marks(m)} />
  );
}

function Traffic(props: { m: IMetrics }): JSX.Element {
  const { m } = props;
  const t = m.total;
  return (
    <>
      <div className="jp-mlops-tiles" data-testid="monitor-totals" data-window={m.window}>
        <Tile label="requests" value={String(t.requests)} />
        <Tile
          label="requests / s"
          value={t.requests_per_s === null ? '–' : String(t.requests_per_s)}
        />
        <Tile label="p50" value={fmtMs(t.p50_ms)} />
        <Tile label="p95" value={fmtMs(t.p95_ms)} />
        <Tile label="p99" value={fmtMs(t.p99_ms)} />
        <Tile label="4xx (input refused)" value={String(t.errors_4xx)} warn={t.errors_4xx > 0} />
        <Tile label="5xx (server failed)" value={String(t.errors_5xx)} warn={t.errors_5xx > 0} />
        <Tile
          label="rows per call"
          value={t.batch_mean === null ? '–' : `${t.batch_mean} (max ${t.batch_max})`}
        />
      </div>
      {m.versions.length === 0 ? (
        <div className="jp-mlops-muted">No calls in this window.</div>
      ) : (
        <div className="jp-mlops-monitor-charts">
          <MetricChart
            m={m}
            title="Requests per second"
            lines={[{ pick: p => p.requests_per_s }]}
            zeroFill
          />
          <MetricChart
            m={m}
            title="Latency (ms)"
            lines={[
              { pick: p => p.p50_ms, suffix: ' p50' },
              { pick: p => p.p95_ms, suffix: ' p95' },
              { pick: p => p.p99_ms, suffix: ' p99' }
            ]}
            zeroFill={false}
          />
          <MetricChart
            m={m}
            title="Errors per point (4xx, 5xx)"
            lines={[
              { pick: p => p.errors_4xx, suffix: ' 4xx' },
              { pick: p => p.errors_5xx, suffix: ' 5xx' }
            ]}
            zeroFill
          />
          <MetricChart
            m={m}
            title="Rows per call (mean)"
            lines={[{ pick: p => p.batch_mean }]}
            zeroFill={false}
          />
        </div>
      )}
      <table className="jp-mlops-table" data-testid="monitor-versions">
        <thead>
          <tr>
            <th>Version</th>
            <th>Requests</th>
            <th>4xx</th>
            <th>5xx</th>
            <th>p50</th>
            <th>p95</th>
            <th>p99</th>
          </tr>
        </thead>
        <tbody>
          {m.versions.map(v => (
            <tr key={v.version}>
              <td>
                {v.version}
                {v.version === m.serving_version ? ' (serving)' : ''}
              </td>
              <td>{v.total.requests}</td>
              <td>{v.total.errors_4xx}</td>
              <td>{v.total.errors_5xx}</td>
              <td>{fmtMs(v.total.p50_ms)}</td>
              <td>{fmtMs(v.total.p95_ms)}</td>
              <td>{fmtMs(v.total.p99_ms)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

const STATE_TEXT: Record<IDrift['state'], string> = {
  off: 'Input recording is off: nothing is compared.',
  collecting: 'Collecting inputs: too few recorded rows to compare yet.',
  no_reference: 'No reference data for this version',
  stable: 'Inputs look like the training data.',
  drifted: 'Inputs drifted from the training data.'
};

function DriftView(props: { d: IDrift }): JSX.Element {
  const { d } = props;
  const max = Math.max(d.settings.drift_threshold * 2, ...d.features.map(f => f.psi));
  return (
    <div data-testid="monitor-drift">
      <div className={`jp-mlops-drift-state jp-mlops-drift-${d.state}`} data-testid="drift-state">
        {STATE_TEXT[d.state]}
        {d.state === 'no_reference' && d.reference?.reason ? `: ${d.reference.reason}` : ''}
      </div>
      <div className="jp-mlops-muted">
        {d.samples} recorded rows of version {d.version ?? '–'} (at least {d.min_samples} to
        compare)
        {d.reference?.source ? `; reference: ${d.reference.source}, ${d.reference.rows} rows` : ''};
        threshold PSI {d.settings.drift_threshold}.
      </div>
      {d.features.length > 0 && (
        <figure className="jp-mlops-chart" aria-label="drift score per feature">
          <figcaption className="jp-mlops-chart-title">
            Drift score per feature (PSI, highest first; dashed line: the threshold)
          </figcaption>
          <div className="jp-mlops-psi-bars">
            {[...d.features]
              .sort((a, b) => b.psi - a.psi)
              .map(f => (
                <div key={f.feature} className="jp-mlops-psi-row" data-testid="psi-row">
                  <span className="jp-mlops-psi-name">{f.feature}</span>
                  <span className="jp-mlops-psi-track">
                    <span
                      className={`jp-mlops-psi-bar${f.drifted ? ' jp-mlops-psi-drifted' : ''}`}
                      style={{ width: `${Math.min(100, (f.psi / max) * 100)}%` }}
                    />
                    <span
                      className="jp-mlops-psi-threshold"
                      style={{ left: `${(d.settings.drift_threshold / max) * 100}%` }}
                    />
                  </span>
                  <span className="jp-mlops-psi-value">
                    {f.psi.toFixed(2)} · mean {f.reference_mean} → {f.recent_mean}
                  </span>
                </div>
              ))}
          </div>
        </figure>
      )}
    </div>
  );
}

function Recording(props: {
  name: string;
  s: IMonitoringSettings;
  onSaved: () => void;
}): JSX.Element {
  const [form, setForm] = useState(props.s);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setForm(props.s), [props.s]);
  const save = async () => {
    setError(null);
    try {
      await setMonitoring(props.name, {
        record_inputs: form.record_inputs,
        sample_rate: Number(form.sample_rate),
        retention_days: Number(form.retention_days),
        drift_threshold: Number(form.drift_threshold)
      });
      props.onSaved();
    } catch (e: any) {
      setError(e.message);
    }
  };
  return (
    <div className="jp-mlops-recording" data-testid="monitor-recording">
      <p className="jp-mlops-privacy">
        {form.record_inputs
          ? `Recording is ON: ${Math.round(form.sample_rate * 100)} % of the requests to this deployment have their inputs kept for ${form.retention_days} days. `
          : 'Recording is OFF: no input of this deployment is kept. '}
        What is kept: the numeric columns of tabular requests; for images only their height, width,
        mean intensity and the number of objects predicted, never the image. Members of the
        deployment's project see the distributions. Turning recording off deletes everything kept.
      </p>
      <ErrorLine error={error} />
      <CheckField
        className="jp-mlops-row-plain"
        label="Record inputs of this deployment"
        checked={form.record_inputs}
        onChange={checked => setForm({ ...form, record_inputs: checked })}
      />
      <label className="jp-mlops-row-plain">
        Sampling rate (0–1){' '}
        <InputGroup
          className="jp-mlops-input-group jp-mlops-input-small"
          aria-label="sampling rate"
          value={String(form.sample_rate)}
          onChange={e => setForm({ ...form, sample_rate: e.target.value as any })}
        />
      </label>
      <label className="jp-mlops-row-plain">
        Keep for (days){' '}
        <InputGroup
          className="jp-mlops-input-group jp-mlops-input-small"
          aria-label="retention days"
          value={String(form.retention_days)}
          onChange={e => setForm({ ...form, retention_days: e.target.value as any })}
        />
      </label>
      <label className="jp-mlops-row-plain">
        Drift threshold (PSI){' '}
        <InputGroup
          className="jp-mlops-input-group jp-mlops-input-small"
          aria-label="drift threshold"
          value={String(form.drift_threshold)}
          onChange={e => setForm({ ...form, drift_threshold: e.target.value as any })}
        />
      </label>
      <Button small onClick={() => void save()}>
        Save recording settings
      </Button>
    </div>
  );
}

/** The whole view; polls every 30 s while open. */
export function DeploymentMonitor(props: { name: string }): JSX.Element {
  const { name } = props;
  const [window, setWindow] = useState('1d');
  const [metrics, setMetrics] = useState<IMetrics | null>(null);
  const [drift, setDrift] = useState<IDrift | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setTick(t => t + 1), 30000);
    return () => clearInterval(timer);
  }, []);
  useEffect(() => {
    let current = true; // a slower answer for an older window must not win
    void Promise.all([getMetrics(name, window), getDrift(name)])
      .then(([m, d]) => {
        if (current) {
          setMetrics(m);
          setDrift(d);
          setError(null);
        }
      })
      .catch(e => current && setError(e.message));
    return () => {
      current = false;
    };
  }, [name, window, tick]);
  return (
    <div className="jp-mlops-monitor" data-testid="deployment-monitor">
      <h2>Monitoring: {name}</h2>
      <ErrorLine error={error} />
      <div className="jp-mlops-row-plain" role="group" aria-label="window">
        {WINDOWS.map(([w, label]) => (
          <Button
            key={w}
            small
            minimal={w !== window}
            onClick={() => setWindow(w)}
            aria-pressed={w === window}
          >
            {label}
          </Button>
        ))}
      </div>
      {metrics ? <Traffic m={metrics} /> : !error && <div className="jp-mlops-muted">Loading…</div>}
      <h3>What the model sees</h3>
      {drift && <DriftView d={drift} />}
      <h3>Input recording</h3>
      {drift && <Recording name={name} s={drift.settings} onSaved={() => setTick(t => t + 1)} />}
    </div>
  );
}

/** Open the monitoring view of deployment `name` (one tab per deployment). */
export function openDeploymentMonitor(app: JupyterFrontEnd, name: string): void {
  openInMainArea(
    app,
    `mlops-monitor-${name}`,
    `Monitoring: ${name}`,
    <DeploymentMonitor name={name} />
  );
}
