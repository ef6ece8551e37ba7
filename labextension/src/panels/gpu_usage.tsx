import React from 'react';

import { ErrorLine } from '../components/errorLine';
import { useRemote } from '../components/hooks';
import { apiUrl } from '../api/request';
import { getUsage, IGpuHours } from '../api/status';

function hours(h: number): string {
  return h < 10 ? h.toFixed(2) : h.toFixed(1);
}

/** One bar per name: the 30-day GPU-hours, the last 7 days drawn inside it. */
function HoursBars(props: { label: string; rows: Record<string, IGpuHours> }): JSX.Element {
  const entries = Object.entries(props.rows).sort((a, b) => b[1]['30d'] - a[1]['30d']);
  const max = Math.max(0.01, ...entries.map(([, h]) => h['30d']));
  return (
    <figure className="jp-mlops-chart jp-mlops-gpuh" aria-label={props.label}>
      <figcaption className="jp-mlops-chart-title">{props.label}</figcaption>
      {entries.length === 0 && <div className="jp-mlops-muted">No GPU use in 30 days.</div>}
      {entries.map(([name, h]) => (
        <div key={name} className="jp-mlops-gpuh-row" data-testid="gpu-hours-row">
          <span className="jp-mlops-gpuh-name" title={name}>
            {name}
          </span>
          <span className="jp-mlops-gpuh-track">
            <span className="jp-mlops-gpuh-30" style={{ width: `${(h['30d'] / max) * 100}%` }} />
            <span className="jp-mlops-gpuh-7" style={{ width: `${(h['7d'] / max) * 100}%` }} />
          </span>
          <span className="jp-mlops-gpuh-value">
            {hours(h['7d'])} / {hours(h['30d'])} h
          </span>
        </div>
      ))}
    </figure>
  );
}

/**
 * My GPU-hours (7 and 30 days, by project); a manager's projects by member; everything for
 * administrators, with the CSV export.
 */
export function GpuUsageView(props: { refreshSignal?: number }): JSX.Element {
  const { data, error } = useRemote(getUsage, [props.refreshSignal]);
  if (!data) {
    return error ? (
      <ErrorLine error={error} />
    ) : (
      <div className="jp-mlops-muted">Loading GPU-hours…</div>
    );
  }
  const csv = apiUrl('usage') + '?format=csv';
  return (
    <div className="jp-mlops-gpu-usage" data-testid="gpu-usage">
      <ErrorLine error={error} />
      <div className="jp-mlops-row">
        <span className="jp-mlops-label">My GPU-hours</span>
        <span className="jp-mlops-value" data-testid="gpu-hours-mine">
          {hours(data.mine['7d'])} h in 7 days · {hours(data.mine['30d'])} h in 30 days
        </span>
      </div>
      <div className="jp-mlops-muted jp-mlops-gpuh-legend">
        <span className="jp-mlops-gpuh-key jp-mlops-gpuh-7" /> last 7 days{' '}
        <span className="jp-mlops-gpuh-key jp-mlops-gpuh-30" /> last 30 days
      </div>
      <HoursBars label="My GPU-hours by project" rows={data.mine.by_project} />
      {Object.entries(data.projects).map(([name, p]) => (
        <HoursBars key={name} label={`Project ${name} by member`} rows={p.by_user} />
      ))}
      <a className="jp-mlops-link" href={csv} download="gpu-hours.csv">
        Export as CSV
      </a>
    </div>
  );
}
