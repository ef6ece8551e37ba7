/**
 * The runs table of one experiment: server-side pages of 100 (MLflow page tokens, so 10,000+
 * runs never reach the browser at once), MLflow search syntax, sortable columns, chosen metric
 * and param columns, and row selection for the compare view.
 */
import { Button, InputGroup } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { KeyChecks } from '../components/fields';
import { useRemote } from '../components/hooks';
import { IRunsPage, IRunSummary, listRuns } from '../api/experiments';
import { num, when } from '../format';

const PAGE = 100;
const MAX_COMPARE = 10;

interface ISort {
  key: string; // an MLflow order_by field, e.g. attributes.start_time or metrics.`loss`
  desc: boolean;
}

function field(kind: 'metrics' | 'params', key: string): string {
  return `${kind}.\`${key}\``;
}

export interface IRunsTableProps {
  experimentId: string;
  selected: string[];
  onSelect: (ids: string[]) => void;
  onOpenRun: (run: IRunSummary) => void;
  onCompare: () => void;
}

export function RunsTable(props: IRunsTableProps): JSX.Element {
  const { experimentId, selected, onSelect } = props;
  const [filterText, setFilterText] = useState('');
  const [filter, setFilter] = useState('');
  const [sort, setSort] = useState<ISort>({ key: 'attributes.start_time', desc: true });
  const [attempt, setAttempt] = useState(0); // "Search" again retries, e.g. after a 503
  const [tokens, setTokens] = useState<(string | null)[]>([null]); // page i starts at tokens[i]
  const [metricCols, setMetricCols] = useState<string[] | null>(null);
  const [paramCols, setParamCols] = useState<string[] | null>(null);

  const pageIndex = tokens.length - 1;
  const {
    data: page,
    error,
    loading
  } = useRemote<IRunsPage>(
    () =>
      listRuns(experimentId, {
        filter,
        orderBy: [`${sort.key} ${sort.desc ? 'DESC' : 'ASC'}`],
        pageToken: tokens[tokens.length - 1],
        max: PAGE
      }),
    [experimentId, filter, sort, tokens, attempt]
  );
  useEffect(() => {
    // the first page's keys pick the default columns; the user's choice is kept after that
    if (page) {
      setMetricCols(cols => cols ?? page.metric_keys.slice(0, 5));
      setParamCols(cols => cols ?? page.param_keys.slice(0, 3));
    }
  }, [page]);

  const applyFilter = () => {
    setFilter(filterText.trim());
    setTokens([null]);
    setAttempt(a => a + 1);
  };
  const sortBy = (key: string) => {
    setSort(s => ({ key, desc: s.key === key ? !s.desc : true }));
    setTokens([null]);
  };
  const toggle = (id: string) =>
    onSelect(selected.includes(id) ? selected.filter(s => s !== id) : [...selected, id]);

  const header = (label: string, key: string | null) => (
    <th
      key={label}
      scope="col"
      className={key ? 'jp-mlops-sortable' : undefined}
      onClick={key ? () => sortBy(key) : undefined}
      aria-sort={key && sort.key === key ? (sort.desc ? 'descending' : 'ascending') : undefined}
      title={key ? `Sort by ${label}` : undefined}
    >
      {label}
      {key && sort.key === key ? (sort.desc ? ' ▼' : ' ▲') : ''}
    </th>
  );

  const metrics = metricCols ?? [];
  const params = paramCols ?? [];
  const chooser = (
    kind: 'metrics' | 'params',
    all: string[],
    cols: string[],
    set: (c: string[]) => void
  ) => (
    <details className="jp-mlops-columns">
      <summary>
        {kind} ({cols.length}/{all.length})
      </summary>
      <div className="jp-mlops-columns-list">
        <KeyChecks keys={all} chosen={cols} onChange={set} />
      </div>
    </details>
  );

  return (
    <div className="jp-mlops-runs" aria-busy={loading}>
      <form
        className="jp-mlops-toolbar"
        onSubmit={e => {
          e.preventDefault();
          applyFilter();
        }}
      >
        <InputGroup
          className="jp-mlops-input-group jp-mlops-filter"
          aria-label="Filter runs (MLflow search syntax)"
          placeholder="metrics.loss < 0.2 and params.lr = '0.01'"
          value={filterText}
          onChange={e => setFilterText(e.target.value)}
        />
        <Button type="submit" small>
          Search
        </Button>
        {page && chooser('metrics', page.metric_keys, metrics, setMetricCols)}
        {page && chooser('params', page.param_keys, params, setParamCols)}
        <span className="jp-mlops-spacer" />
        <Button
          small
          disabled={selected.length < 2 || selected.length > MAX_COMPARE}
          onClick={props.onCompare}
          title="Select 2 to 10 runs"
        >
          Compare ({selected.length})
        </Button>
      </form>
      <ErrorLine error={error} />
      <div className="jp-mlops-table-wrap">
        <table className="jp-mlops-table" aria-label="Runs">
          <thead>
            <tr>
              <th scope="col" aria-label="Select" />
              {header('Run', 'attributes.run_name')}
              {header('Started', 'attributes.start_time')}
              {header('Status', 'attributes.status')}
              {header('User', null)}
              {metrics.map(k => header(k, field('metrics', k)))}
              {params.map(k => header(k, field('params', k)))}
            </tr>
          </thead>
          <tbody>
            {(page?.runs ?? []).map(r => (
              <tr key={r.run_id} className={selected.includes(r.run_id) ? 'jp-mlops-selected' : ''}>
                <td>
                  <input
                    type="checkbox"
                    className="jp-mod-styled"
                    aria-label={`Select ${r.run_name || r.run_id}`}
                    checked={selected.includes(r.run_id)}
                    onChange={() => toggle(r.run_id)}
                  />
                </td>
                <td>
                  <a
                    className="jp-mlops-link"
                    href="#"
                    onClick={e => (e.preventDefault(), props.onOpenRun(r))}
                  >
                    {r.run_name || r.run_id.slice(0, 8)}
                  </a>
                  {r.ui_url && (
                    <a
                      className="jp-mlops-link jp-mlops-ext"
                      href={r.ui_url}
                      target="_blank"
                      rel="noopener noreferrer"
                      title="Open this run in the MLflow UI"
                      aria-label={`Open ${r.run_name || r.run_id} in MLflow`}
                    >
                      ↗
                    </a>
                  )}
                </td>
                <td>{when(r.start_time)}</td>
                <td>{r.status}</td>
                <td>{r.user}</td>
                {metrics.map(k => (
                  <td key={k} className="jp-mlops-num">
                    {num(r.metrics[k])}
                  </td>
                ))}
                {params.map(k => (
                  <td key={k}>{r.params[k] ?? ''}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
        {page && page.runs.length === 0 && <div className="jp-mlops-muted">No runs match.</div>}
      </div>
      <div className="jp-mlops-pager">
        <Button
          small
          disabled={pageIndex === 0 || loading}
          onClick={() => setTokens(t => t.slice(0, -1))}
        >
          ‹ Previous
        </Button>
        <span data-testid="runs-page">
          Page {pageIndex + 1} · runs {pageIndex * PAGE + 1}–
          {pageIndex * PAGE + (page?.runs.length ?? 0)}
        </span>
        <Button
          small
          disabled={!page?.next_page_token || loading}
          onClick={() => setTokens(t => [...t, page!.next_page_token])}
        >
          Next ›
        </Button>
      </div>
    </div>
  );
}
