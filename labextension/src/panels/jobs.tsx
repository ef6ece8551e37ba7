import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget, SidePanel, ToolbarButton, runIcon } from '@jupyterlab/ui-components';
import React, { useCallback, useEffect, useState } from 'react';

import { requestAPI } from '../request';
import { ACTIVE, IJob, JobDetail, Progress, StateBadge, parseParams } from './job_detail';
import { PipelineForm, SweepForm } from './jobs_forms';
import { PipelineView, SweepView } from './jobs_groups';

/** Command ids of the jobs section. */
export const JobCommandIDs = {
  submitCurrent: 'mlops:submit-current-as-job',
  refreshJobs: 'mlops:refresh-jobs',
  openJob: 'mlops:open-job'
};

interface IJobsAnswer {
  jobs: IJob[];
  queue: {
    id: number | null;
    user: string;
    state: string;
    gpus: number;
    position: number | null;
    reason: string;
    mine: boolean;
  }[];
}

/** The submit form of the section (also prefilled by "Submit as job" on a notebook). */
function SubmitForm(props: { path: string; onDone: (job: IJob) => void }): JSX.Element {
  const [path, setPath] = useState(props.path);
  const [params, setParams] = useState('');
  const [gpus, setGpus] = useState(0);
  const [timeout, setTimeoutSeconds] = useState(0);
  const [experiment, setExperiment] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    setPath(props.path);
  }, [props.path]);

  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    try {
      const job = await requestAPI<IJob>('jobs', {
        method: 'POST',
        body: JSON.stringify({
          path,
          params: parseParams(params),
          gpus,
          ...(timeout ? { timeout } : {}),
          ...(experiment ? { experiment } : {})
        })
      });
      setError(null);
      props.onDone(job);
    } catch (err: any) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="jp-mlops-job-form" onSubmit={submit} aria-label="Submit a job">
      <label>
        Notebook or script
        <input
          className="jp-mod-styled"
          value={path}
          placeholder="train.ipynb"
          onChange={e => setPath(e.target.value)}
          name="path"
        />
      </label>
      <label>
        Parameters
        <input
          className="jp-mod-styled"
          value={params}
          placeholder="lr=0.01 epochs=3"
          onChange={e => setParams(e.target.value)}
          name="params"
        />
      </label>
      <div className="jp-mlops-job-form-row">
        <label>
          GPUs
          <input
            className="jp-mod-styled"
            type="number"
            min={0}
            value={gpus}
            onChange={e => setGpus(parseInt(e.target.value || '0', 10))}
            name="gpus"
          />
        </label>
        <label title="Stop the job (it fails) once it has run this long; 0: no own limit">
          Time limit (s)
          <input
            className="jp-mod-styled"
            type="number"
            min={0}
            value={timeout}
            onChange={e => setTimeoutSeconds(parseInt(e.target.value || '0', 10))}
            name="timeout"
          />
        </label>
      </div>
      <label>
        Experiment
        <input
          className="jp-mod-styled"
          value={experiment}
          placeholder="(file name)"
          onChange={e => setExperiment(e.target.value)}
          name="experiment"
        />
      </label>
      {error && (
        <div className="jp-mlops-error" role="alert">
          {error}
        </div>
      )}
      <button type="submit" className="jp-Button jp-mod-styled jp-mod-accept" disabled={busy}>
        Submit job
      </button>
    </form>
  );
}

/** The Jobs section of the MLOps sidebar: my jobs with queue position, reason and progress. */
function JobsList(props: {
  tick: number;
  prefill: string;
  open: (job: IJob) => void;
  openGroup: (kind: 'sweep' | 'pipeline', id: number) => void;
}): JSX.Element {
  const [data, setData] = useState<IJobsAnswer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [form, setForm] = useState<'' | 'job' | 'sweep' | 'pipeline'>('');
  const [sweeps, setSweeps] = useState<any[]>([]);
  const [pipelines, setPipelines] = useState<any[]>([]);

  const refresh = useCallback(async () => {
    try {
      const [jobs, sw, pl] = await Promise.all([
        requestAPI<IJobsAnswer>('jobs'),
        requestAPI<{ sweeps: any[] }>('sweeps'),
        requestAPI<{ pipelines: any[] }>('pipelines')
      ]);
      setData(jobs);
      setSweeps(sw.sweeps);
      setPipelines(pl.pipelines);
      setError(null);
    } catch (e: any) {
      setError(e.message);
    }
  }, []);

  useEffect(() => {
    void refresh();
    const timer = window.setInterval(() => void refresh(), 2000);
    return () => window.clearInterval(timer);
  }, [refresh, props.tick]);
  useEffect(() => {
    if (props.prefill) {
      setForm('job');
    }
  }, [props.prefill, props.tick]);

  const othersWaiting = (data?.queue || []).filter(q => !q.mine && q.state === 'queued').length;
  return (
    <div className="jp-mlops-jobs" data-testid="jobs-section">
      <div className="jp-mlops-jobs-actions">
        {(['job', 'sweep', 'pipeline'] as const).map(kind => (
          <button
            key={kind}
            className="jp-Button jp-mod-styled jp-mod-reject"
            onClick={() => setForm(form === kind ? '' : kind)}
          >
            {form === kind ? 'Close' : `New ${kind}…`}
          </button>
        ))}
        {othersWaiting > 0 && (
          <span className="jp-mlops-muted">{othersWaiting} job(s) of others waiting</span>
        )}
      </div>
      {form === 'job' && (
        <SubmitForm
          path={props.prefill}
          onDone={job => {
            setForm('');
            void refresh();
            props.open(job);
          }}
        />
      )}
      {form === 'sweep' && (
        <SweepForm
          path={props.prefill}
          onDone={id => {
            setForm('');
            void refresh();
            props.openGroup('sweep', id);
          }}
        />
      )}
      {form === 'pipeline' && (
        <PipelineForm
          onDone={id => {
            setForm('');
            void refresh();
            props.openGroup('pipeline', id);
          }}
        />
      )}
      {error && (
        <div className="jp-mlops-error" role="alert">
          {error}
        </div>
      )}
      {data && data.jobs.length === 0 && (
        <div className="jp-mlops-muted">No jobs yet: submit a notebook or a script.</div>
      )}
      <ul className="jp-mlops-job-list" aria-label="My jobs">
        {(data?.jobs || []).slice(0, 50).map(job => (
          <li
            key={job.id}
            className="jp-mlops-job-item"
            data-testid={`job-${job.id}`}
            onClick={() => props.open(job)}
            title="Open the job: logs, links, cancel, rerun"
          >
            <div className="jp-mlops-job-line">
              <StateBadge state={job.state} />
              <span className="jp-mlops-job-name">
                #{job.id} {job.spec.path}
              </span>
              {job.spec.gpus > 0 && <span className="jp-mlops-muted">{job.spec.gpus} GPU</span>}
            </div>
            {job.state === 'queued' && job.reason && (
              <div className="jp-mlops-job-reason">{job.reason}</div>
            )}
            {job.state === 'running' && <Progress progress={job.progress} />}
            {!ACTIVE.has(job.state) && job.state !== 'succeeded' && job.reason && (
              <div className="jp-mlops-job-reason">{job.reason}</div>
            )}
          </li>
        ))}
      </ul>
      {sweeps.length > 0 && <h3 className="jp-mlops-subheading">Sweeps</h3>}
      <ul className="jp-mlops-job-list" aria-label="My sweeps">
        {sweeps.slice(0, 20).map(s => (
          <li
            key={s.id}
            className="jp-mlops-job-item"
            onClick={() => props.openGroup('sweep', s.id)}
          >
            <div className="jp-mlops-job-line">
              <StateBadge state={s.state} />
              <span className="jp-mlops-job-name">
                sweep #{s.id} {s.path}
              </span>
            </div>
            <div className="jp-mlops-job-reason">
              {s.asked}/{s.n_trials} trials
              {s.best ? ` · best ${s.metric} ${Number(s.best.value).toPrecision(4)}` : ''}
            </div>
          </li>
        ))}
      </ul>
      {pipelines.length > 0 && <h3 className="jp-mlops-subheading">Pipelines</h3>}
      <ul className="jp-mlops-job-list" aria-label="My pipelines">
        {pipelines.slice(0, 20).map(p => (
          <li
            key={p.id}
            className="jp-mlops-job-item"
            onClick={() => props.openGroup('pipeline', p.id)}
          >
            <div className="jp-mlops-job-line">
              <StateBadge state={p.state} />
              <span className="jp-mlops-job-name">
                pipeline #{p.id} {p.name} · {p.steps.length} steps
              </span>
            </div>
          </li>
        ))}
      </ul>
    </div>
  );
}

/** The Jobs section widget. */
export class JobsPanel extends ReactWidget {
  private _tick = 0;
  private _prefill = '';

  constructor(
    private _open: (job: IJob) => void,
    private _openGroup: (kind: 'sweep' | 'pipeline', id: number) => void
  ) {
    super();
    this.addClass('jp-mlops-section');
    this.title.label = 'Jobs';
  }

  refresh(prefill = ''): void {
    this._prefill = prefill;
    this._tick += 1;
    this.update();
  }

  render(): JSX.Element {
    return (
      <JobsList
        tick={this._tick}
        prefill={this._prefill}
        open={this._open}
        openGroup={this._openGroup}
      />
    );
  }
}

function mainArea(app: JupyterFrontEnd, id: string, label: string, content: JSX.Element): void {
  const existing = Array.from(app.shell.widgets('main')).find(w => w.id === id);
  if (existing) {
    app.shell.activateById(id);
    return;
  }
  const body = ReactWidget.create(content);
  body.addClass('jp-mlops-main');
  const widget = new MainAreaWidget({ content: body });
  widget.id = id;
  widget.title.label = label;
  widget.title.closable = true;
  app.shell.add(widget, 'main');
  app.shell.activateById(id);
}

export function registerJobs(
  app: JupyterFrontEnd,
  sidebar: SidePanel,
  palette: ICommandPalette | null
): JobsPanel {
  const openJob = (job: IJob) =>
    mainArea(
      app,
      `jp-mlops-job-${job.id}`,
      `Job #${job.id}`,
      <JobDetail jobId={job.id} app={app} open={openJob} />
    );
  const openGroup = (kind: 'sweep' | 'pipeline', id: number) =>
    mainArea(
      app,
      `jp-mlops-${kind}-${id}`,
      `${kind === 'sweep' ? 'Sweep' : 'Pipeline'} #${id}`,
      kind === 'sweep' ? (
        <SweepView sweepId={id} openJob={jobId => openJob({ id: jobId } as IJob)} />
      ) : (
        <PipelineView pipelineId={id} openJob={jobId => openJob({ id: jobId } as IJob)} />
      )
    );
  const panel = new JobsPanel(openJob, openGroup);
  sidebar.addWidget(panel);

  const currentPath = (): string => {
    const w: any = app.shell.currentWidget;
    return w?.context?.path || '';
  };
  app.commands.addCommand(JobCommandIDs.submitCurrent, {
    label: 'MLOps: submit this notebook as a job',
    caption: 'Run it as a job (papermill) on the platform, tracked in MLflow',
    icon: runIcon,
    execute: () => {
      app.shell.activateById(sidebar.id);
      panel.refresh(currentPath());
    }
  });
  app.commands.addCommand(JobCommandIDs.refreshJobs, {
    label: 'MLOps: refresh jobs',
    execute: () => panel.refresh()
  });
  app.commands.addCommand(JobCommandIDs.openJob, {
    label: 'MLOps: open a job',
    execute: args => openJob({ id: Number(args.id) } as IJob)
  });
  // A "submit as job" button in every notebook's toolbar.
  app.docRegistry.addWidgetExtension('Notebook', {
    createNew: (nbPanel: any) => {
      const button = new ToolbarButton({
        icon: runIcon,
        tooltip: 'Submit this notebook as an MLOps job',
        label: 'Job',
        onClick: () => {
          app.shell.activateById(sidebar.id);
          panel.refresh(nbPanel.context.path);
        }
      });
      nbPanel.toolbar.insertItem(10, 'mlops-submit-job', button);
      return button;
    }
  });
  palette?.addItem({ command: JobCommandIDs.submitCurrent, category: 'MLOps' });
  palette?.addItem({ command: JobCommandIDs.refreshJobs, category: 'MLOps' });
  return panel;
}
