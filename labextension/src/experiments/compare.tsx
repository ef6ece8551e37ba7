/**
 * 2-10 runs side by side: metric histories as overlaid line charts, differing params and final
 * metrics in one table, and the detections of evaluated runs (the first 8) image by image.
 */
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { CheckField, KeyChecks } from '../components/fields';
import { compareRuns, ICompare } from '../api/experiments';
import { num } from '../format';
import { CompareDetections } from './detectionsCompare';
import { LineChart, SERIES_COLORS } from './lineChart';

export function CompareView(props: { runIds: string[] }): JSX.Element {
  const [data, setData] = useState<ICompare | null>(null);
  const [metrics, setMetrics] = useState<string[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [onlyDiff, setOnlyDiff] = useState(true);

  useEffect(() => {
    setError(null);
    compareRuns(props.runIds, metrics ?? undefined).then(
      d => {
        setData(d);
        if (metrics === null) {
          setMetrics(Object.keys(d.histories));
        }
      },
      e => setError(e.message)
    );
  }, [props.runIds.join(','), (metrics ?? []).join(',')]);

  if (error) {
    return <ErrorLine error={error} />;
  }
  if (!data) {
    return <div className="jp-mlops-muted">Loading {props.runIds.length} runs…</div>;
  }
  const label = (id: string) => {
    const r = data.runs.find(x => x.run_id === id);
    return r?.run_name || id.slice(0, 8);
  };
  const chosen = metrics ?? [];
  const params = onlyDiff ? data.differing_params : data.param_keys;
  return (
    <div className="jp-mlops-compare" data-testid="compare-view">
      <div className="jp-mlops-toolbar">
        <span className="jp-mlops-label">Charts:</span>
        <KeyChecks
          className="jp-mlops-check"
          keys={data.metric_keys}
          chosen={chosen}
          onChange={setMetrics}
        />
      </div>
      <div className="jp-mlops-charts">
        {chosen
          .filter(k => data.histories[k])
          .map(k => (
            <LineChart
              key={k}
              title={k}
              series={data.runs
                .filter(r => data.histories[k][r.run_id])
                .map(r => ({
                  id: r.run_id,
                  label: label(r.run_id),
                  points: data.histories[k][r.run_id],
                  color: SERIES_COLORS[data.runs.indexOf(r) % SERIES_COLORS.length]
                }))}
            />
          ))}
      </div>
      <CheckField
        label={`only params that differ (${data.differing_params.length} of ${data.param_keys.length})`}
        checked={onlyDiff}
        onChange={setOnlyDiff}
      />
      <div className="jp-mlops-table-wrap">
        <table className="jp-mlops-table" aria-label="Compared runs">
          <thead>
            <tr>
              <th scope="col">Run</th>
              {params.map(k => (
                <th scope="col" key={`p${k}`}>
                  {k}
                </th>
              ))}
              {data.metric_keys.map(k => (
                <th scope="col" key={`m${k}`} className="jp-mlops-num">
                  {k} (final)
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {data.runs.map((r, i) => (
              <tr key={r.run_id}>
                <th scope="row">
                  <span
                    className="jp-mlops-swatch"
                    style={{ background: SERIES_COLORS[i % SERIES_COLORS.length] }}
                  />
                  <a
                    className="jp-mlops-link"
                    href={r.ui_url}
                    target="_blank"
                    rel="noopener noreferrer"
                  >
                    {label(r.run_id)}
                  </a>
                </th>
                {params.map(k => (
                  <td
                    key={`p${k}`}
                    className={data.differing_params.includes(k) ? 'jp-mlops-diff' : ''}
                  >
                    {r.params[k] ?? '—'}
                  </td>
                ))}
                {data.metric_keys.map(k => (
                  <td key={`m${k}`} className="jp-mlops-num">
                    {num(r.metrics[k])}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {/* evaluated runs' boxes side by side on the same validation images (up to 8) */}
      {data.runs.length >= 2 && (
        <CompareDetections
          runs={data.runs.map(r => ({
            runId: r.run_id,
            label: label(r.run_id),
            metrics: r.metrics
          }))}
        />
      )}
    </div>
  );
}
