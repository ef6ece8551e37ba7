import React from 'react';

import { ErrorLine } from '../components/errorLine';
import { useRemote } from '../components/hooks';
import { ISeries, LineChart } from '../experiments/lineChart';
import { getRunResources } from '../api/experiments';

/** Charts, and which sampled metrics (without `system/`) go on each. */
const CHARTS: { title: string; match: (key: string) => boolean }[] = [
  { title: 'CPU (%)', match: k => k === 'cpu_utilization_percentage' },
  { title: 'Memory (MB)', match: k => k === 'system_memory_usage_megabytes' },
  { title: 'GPU utilisation (%)', match: k => /^gpu_\d+_utilization_percentage$/.test(k) },
  { title: 'GPU memory (MB)', match: k => /^gpu_\d+_memory_usage_megabytes$/.test(k) }
];

/**
 * The resources a job's run used over time (CPU, memory, GPU utilisation and memory), as the
 * run sampled them; refreshed while the job runs.
 */
export function JobResources(props: { runId: string; running: boolean }): JSX.Element | null {
  const { data, error } = useRemote(() => getRunResources(props.runId), [props.runId], {
    everyMs: props.running ? 10_000 : 0
  });
  if (!data) {
    return error ? <ErrorLine error={error} /> : null;
  }
  const charts = CHARTS.map(c => ({
    title: c.title,
    series: Object.entries(data.metrics)
      .filter(([k]) => c.match(k))
      .map(([k, points]): ISeries => ({ id: k, label: k, points }))
  })).filter(c => c.series.length > 0);
  if (charts.length === 0) {
    return (
      <div className="jp-mlops-muted" data-testid="job-resources">
        No resource samples in this run yet.
      </div>
    );
  }
  return (
    <div className="jp-mlops-job-resources" data-testid="job-resources">
      {charts.map(c => (
        <LineChart key={c.title} title={c.title} series={c.series} xLabel="seconds" />
      ))}
    </div>
  );
}
