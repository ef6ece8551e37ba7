import { JupyterFrontEnd } from '@jupyterlab/application';
import { PageConfig } from '@jupyterlab/coreutils';
import { Button, InputGroup } from '@jupyterlab/ui-components';
import React, { useCallback, useEffect, useMemo, useRef, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { usePollLoop } from '../components/hooks';
import { getJob, getJobLog, IJob, jobAction } from '../api/jobs';
import { JobResources } from './job_resources';
import { terminalText } from './job_log';

export const ACTIVE = new Set(['queued', 'running']);

/** The MLflow UI, next to the hub (`/services/mlflow/`). */
export function mlflowRunUrl(experimentId: string, runId: string): string {
  const hubPrefix = PageConfig.getOption('hubPrefix') || '/hub/';
  const base = hubPrefix.replace(/hub\/?$/, '') + 'services/mlflow/';
  return `${base}#/experiments/${experimentId}/runs/${runId}`;
}

export function StateBadge(props: { state: string }): JSX.Element {
  return (
    <span className={`jp-mlops-job-state jp-mlops-job-${props.state}`} data-state={props.state}>
      {props.state}
    </span>
  );
}

export function Progress(props: { progress: IJob['progress'] }): JSX.Element | null {
  const { done, total, label } = props.progress || {};
  if (!total) {
    return null;
  }
  const pct = Math.min(100, Math.round((100 * (done || 0)) / total));
  return (
    <div className="jp-mlops-progress" title={label} aria-label={`progress ${label}`}>
      <div className="jp-mlops-progress-bar" style={{ width: `${pct}%` }} />
      <span className="jp-mlops-progress-label">{label}</span>
    </div>
  );
}

export function parseParams(text: string): Record<string, any> {
  // "lr=0.01 epochs=3 name=x" or a JSON object
  const t = text.trim();
  if (!t) {
    return {};
  }
  if (t.startsWith('{')) {
    return JSON.parse(t);
  }
  const out: Record<string, any> = {};
  for (const part of t.split(/[\s,]+/).filter(Boolean)) {
    const i = part.indexOf('=');
    if (i < 1) {
      throw new Error(`"${part}" is not name=value`);
    }
    const raw = part.slice(i + 1);
    let value: any = raw;
    try {
      value = JSON.parse(raw);
    } catch {
      // a bare word is a string
    }
    out[part.slice(0, i)] = value;
  }
  return out;
}

/** A job in the main area: live status and progress, streaming log, links, cancel, rerun. */
export function JobDetail(props: {
  jobId: number;
  app: JupyterFrontEnd;
  open: (job: IJob) => void;
  /** After an action changed the job (cancel, rerun): the lists showing it load again. */
  onChanged?: () => void;
}): JSX.Element {
  const [job, setJob] = useState<IJob | null>(null);
  const [log, setLog] = useState('');
  // colour codes removed and progress bars redrawn in place, as a terminal shows them
  const shownLog = useMemo(() => terminalText(log), [log]);
  const [error, setError] = useState<string | null>(null);
  const [editing, setEditing] = useState(false);
  const [params, setParams] = useState('');
  const offset = useRef(0);
  const logEnd = useRef<HTMLPreElement>(null);

  const poll = useCallback(async () => {
    try {
      const j = await getJob(props.jobId);
      setJob(j);
      let more = true;
      while (more) {
        const chunk = await getJobLog(props.jobId, offset.current);
        more = chunk.offset > offset.current && chunk.text.length >= 256 * 1024;
        if (chunk.text) {
          offset.current = chunk.offset;
          setLog(prev => prev + chunk.text);
        }
      }
      return ACTIVE.has(j.state);
    } catch (e: any) {
      setError(e.message);
      return true;
    }
  }, [props.jobId]);

  usePollLoop(poll, 1000);
  useEffect(() => {
    // braces matter: recent Chromium returns a Promise from scrollTo, and an effect may only
    // return a cleanup function
    const pre = logEnd.current;
    if (pre) {
      pre.scrollTop = pre.scrollHeight;
    }
  }, [log]);

  const act = async (what: string, body?: any) => {
    try {
      const j = await jobAction(props.jobId, what, body || {});
      setError(null);
      props.onChanged?.();
      if (what === 'rerun') {
        props.open(j);
      } else {
        setJob(j);
      }
    } catch (e: any) {
      setError(e.message);
    }
  };

  if (!job) {
    return <div className="jp-mlops-muted">{error || 'Loading job…'}</div>;
  }
  return (
    <div className="jp-mlops-job-detail" data-testid="job-detail">
      <h2>
        Job #{job.id} · {job.spec.path} <StateBadge state={job.state} />
      </h2>
      <ErrorLine error={error} />
      {job.reason && <div className="jp-mlops-job-reason">{job.reason}</div>}
      {job.state === 'running' && <Progress progress={job.progress} />}
      <table className="jp-mlops-kv">
        <tbody>
          <tr>
            <th>Parameters</th>
            <td>
              <code>{JSON.stringify(job.spec.params)}</code>
            </td>
          </tr>
          <tr>
            <th>GPUs</th>
            <td>
              {job.spec.gpus} {job.gpu_indices.length > 0 && `(devices ${job.gpu_indices})`}
            </td>
          </tr>
          {(job.spec.timeout ?? 0) > 0 && (
            <tr>
              <th>Time limit</th>
              <td>{job.spec.timeout} s</td>
            </tr>
          )}
          <tr>
            <th>Project · experiment</th>
            <td>
              {job.spec.project} · {job.spec.experiment}
            </td>
          </tr>
          {Object.keys(job.metrics || {}).length > 0 && (
            <tr>
              <th>Metrics</th>
              <td>
                {Object.entries(job.metrics)
                  .map(([k, v]) => `${k} = ${Number(v).toPrecision(4)}`)
                  .join(', ')}
              </td>
            </tr>
          )}
          {job.snapshot_of && (
            <tr>
              <th>Code</th>
              <td>snapshot of job #{job.snapshot_of}</td>
            </tr>
          )}
          {job.spec.dataset_version && (
            <tr>
              <th>Dataset</th>
              <td data-testid="job-dataset">
                {job.dataset_resolved && job.dataset_resolved !== job.spec.dataset_version
                  ? `${job.dataset_resolved} (asked for ${job.spec.dataset_version})`
                  : job.dataset_resolved || job.spec.dataset_version}
              </td>
            </tr>
          )}
          {job.seed !== undefined && job.seed !== null && (
            <tr>
              <th>Seed</th>
              <td data-testid="job-seed">{job.seed}</td>
            </tr>
          )}
          {(job.environment?.hash || job.environment?.wanted) && (
            <tr>
              <th>Environment</th>
              <td
                data-testid="job-environment"
                title={job.environment.hash ?? job.environment.wanted}
              >
                {job.environment.hash
                  ? `lock ${job.environment.hash.slice(0, 12)} · ${job.environment.packages ?? '?'} packages`
                  : `lock ${job.environment.wanted!.slice(0, 12)}`}
                {job.environment.of !== undefined &&
                  (job.environment.rebuilt
                    ? ` · rebuilt as job #${job.environment.of} had it`
                    : job.environment.hash
                      ? ` · the same as job #${job.environment.of}'s`
                      : ` · job #${job.environment.of}'s, to be rebuilt if it changed`)}
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {job.run_id && <JobResources runId={job.run_id} running={job.state === 'running'} />}
      <div className="jp-mlops-job-links">
        {job.run_id && (
          <a
            className="jp-mlops-link"
            href={mlflowRunUrl(job.experiment_id, job.run_id)}
            target="_blank"
            rel="noopener noreferrer"
          >
            MLflow run ↗
          </a>
        )}
        {job.executed_notebook && (
          <a
            className="jp-mlops-link"
            href="#"
            onClick={e => {
              e.preventDefault();
              void props.app.commands.execute('docmanager:open', {
                path: job.executed_notebook
              });
            }}
          >
            Executed notebook
          </a>
        )}
      </div>
      <div className="jp-mlops-job-buttons">
        {ACTIVE.has(job.state) && (
          <Button className="jp-mod-styled jp-mod-warn" onClick={() => act('cancel')}>
            Cancel
          </Button>
        )}
        <Button
          className="jp-mod-styled jp-mod-reject"
          onClick={() => act('rerun', { exact: true })}
          title="Same folder snapshot, parameters, seed, dataset version and environment (rebuilt from its lock if it changed)"
        >
          Rerun exactly
        </Button>
        <Button
          className="jp-mod-styled jp-mod-reject"
          onClick={() => {
            setParams(
              Object.entries(job.spec.params)
                .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
                .join(' ')
            );
            setEditing(!editing);
          }}
        >
          Rerun with edits…
        </Button>
      </div>
      {editing && (
        <div className="jp-mlops-job-form-row">
          <InputGroup
            className="jp-mlops-input-group"
            value={params}
            onChange={e => setParams(e.target.value)}
            aria-label="Edited parameters"
          />
          <Button
            className="jp-mod-styled jp-mod-accept"
            onClick={() => {
              try {
                void act('rerun', { params: parseParams(params) });
              } catch (e: any) {
                setError(e.message);
              }
            }}
          >
            Rerun
          </Button>
        </div>
      )}
      <h3 className="jp-mlops-subheading">Log</h3>
      <pre className="jp-mlops-job-log" ref={logEnd} data-testid="job-log">
        {shownLog || '(no output yet)'}
      </pre>
    </div>
  );
}
