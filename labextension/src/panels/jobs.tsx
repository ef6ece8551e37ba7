import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { Button, SidePanel, ToolbarButton, runIcon } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { NumberField, TextField } from '../components/fields';
import { usePolledList } from '../components/hooks';
import { openAsLatest, openInMainArea } from '../components/mainArea';
import { SidebarSection } from '../components/sidebarSection';
import { IJob } from '../api/jobs';
import { CommandIDs } from '../commands';
import { IMlopsModel } from '../tokens';
import { ACTIVE, JobDetail, Progress, StateBadge, parseParams } from './job_detail';
import { JobForm, PipelineForm, SweepForm } from './jobs_forms';
import { PipelineView, SweepView } from './jobs_groups';

type OpenTab = typeof openInMainArea;

/** Command ids of the jobs section. */

/** The submit form of the section (also prefilled by "Submit as job" on a notebook). */
function SubmitForm(props: { path: string; onDone: (job: IJob) => void }): JSX.Element {
  const [path, setPath] = useState(props.path);
  const [params, setParams] = useState('');
  const [gpus, setGpus] = useState(0);
  const [gpuType, setGpuType] = useState('');
  const [timeout, setTimeoutSeconds] = useState(0);
  const [experiment, setExperiment] = useState('');
  useEffect(() => {
    setPath(props.path);
  }, [props.path]);

  return (
    <JobForm<IJob>
      label="Submit a job"
      path="jobs"
      submitLabel="Submit job"
      onDone={props.onDone}
      body={() => ({
        path,
        params: parseParams(params),
        gpus,
        ...(gpus && gpuType.trim() ? { gpu_type: gpuType.trim() } : {}),
        ...(timeout ? { timeout } : {}),
        ...(experiment ? { experiment } : {})
      })}
    >
      <TextField
        label="Notebook or script"
        value={path}
        placeholder="train.ipynb"
        onChange={setPath}
        name="path"
      />
      <TextField
        label="Parameters"
        value={params}
        placeholder="lr=0.01 epochs=3"
        onChange={setParams}
        name="params"
      />
      <div className="jp-mlops-job-form-row">
        <NumberField label="GPUs" min={0} value={gpus} onChange={setGpus} name="gpus" />
        <NumberField
          label="Time limit (s)"
          title="Stop the job (it fails) once it has run this long; 0: no own limit"
          min={0}
          value={timeout}
          onChange={setTimeoutSeconds}
          name="timeout"
        />
      </div>
      {gpus > 0 && (
        <TextField
          label="GPU type"
          value={gpuType}
          placeholder="any (e.g. A100)"
          onChange={setGpuType}
          name="gpu_type"
        />
      )}
      <TextField
        label="Experiment"
        value={experiment}
        placeholder="(file name)"
        onChange={setExperiment}
        name="experiment"
      />
    </JobForm>
  );
}

/** One row of the section's lists (jobs, sweeps, pipelines): state and name, then details. */
function ListRow(props: {
  state: string;
  name: React.ReactNode;
  onClick: () => void;
  testId?: string;
  title?: string;
  /** Shown on the name's line, after it. */
  aside?: React.ReactNode;
  children?: React.ReactNode;
}): JSX.Element {
  return (
    <li
      className="jp-mlops-job-item"
      data-testid={props.testId}
      onClick={props.onClick}
      title={props.title}
    >
      <div className="jp-mlops-job-line">
        <StateBadge state={props.state} />
        <span className="jp-mlops-job-name">{props.name}</span>
        {props.aside}
      </div>
      {props.children}
    </li>
  );
}

/** My sweeps or my pipelines (the newest 20), each opening its own view in the main area. */
function GroupList(props: {
  kind: 'sweep' | 'pipeline';
  groups: readonly any[];
  open: (kind: 'sweep' | 'pipeline', id: number) => void;
  name: (group: any) => string;
  detail?: (group: any) => React.ReactNode;
}): JSX.Element {
  const { kind, groups } = props;
  return (
    <>
      {groups.length > 0 && (
        <h3 className="jp-mlops-subheading">{kind === 'sweep' ? 'Sweeps' : 'Pipelines'}</h3>
      )}
      <ul className="jp-mlops-job-list" aria-label={`My ${kind}s`}>
        {groups.slice(0, 20).map(g => (
          <ListRow
            key={g.id}
            state={g.state}
            name={props.name(g)}
            onClick={() => props.open(kind, g.id)}
          >
            {props.detail?.(g)}
          </ListRow>
        ))}
      </ul>
    </>
  );
}

/** The Jobs section of the MLOps sidebar: my jobs with queue position, reason and progress. */
function JobsList(props: {
  model: IMlopsModel;
  tick: number;
  prefill: string;
  open: (job: IJob) => void;
  openGroup: (kind: 'sweep' | 'pipeline', id: number) => void;
  /** Open what was just submitted, in place of the last submission's tab. */
  openSubmitted: (kind: 'job' | 'sweep' | 'pipeline', id: number) => void;
}): JSX.Element {
  const [form, setForm] = useState<'' | 'job' | 'sweep' | 'pipeline'>('');
  const jobs = usePolledList(props.model.jobs, props.tick);
  const sweeps = usePolledList(props.model.sweeps, props.tick);
  const pipelines = usePolledList(props.model.pipelines, props.tick);
  const error = jobs.error ?? sweeps.error ?? pipelines.error;
  // After a submit: close the form, list the new entry (in every view) and open it.
  const submitted = (open: () => void) => {
    setForm('');
    void Promise.all([jobs.reload(), sweeps.reload(), pipelines.reload()]);
    open();
  };
  useEffect(() => {
    if (props.prefill) {
      setForm('job');
    }
  }, [props.prefill, props.tick]);

  const queue = jobs.answer?.queue ?? [];
  const othersWaiting = queue.filter(q => !q.mine && q.state === 'queued').length;
  return (
    <div className="jp-mlops-jobs" data-testid="jobs-section">
      <div className="jp-mlops-jobs-actions">
        {(['job', 'sweep', 'pipeline'] as const).map(kind => (
          <Button
            key={kind}
            className="jp-mod-styled jp-mod-reject"
            onClick={() => setForm(form === kind ? '' : kind)}
          >
            {form === kind ? 'Close' : `New ${kind}…`}
          </Button>
        ))}
        {othersWaiting > 0 && (
          <span className="jp-mlops-muted">{othersWaiting} job(s) of others waiting</span>
        )}
      </div>
      {form === 'job' && (
        <SubmitForm
          path={props.prefill}
          onDone={job => submitted(() => props.openSubmitted('job', job.id))}
        />
      )}
      {form === 'sweep' && (
        <SweepForm
          path={props.prefill}
          onDone={id => submitted(() => props.openSubmitted('sweep', id))}
        />
      )}
      {form === 'pipeline' && (
        <PipelineForm onDone={id => submitted(() => props.openSubmitted('pipeline', id))} />
      )}
      <ErrorLine error={error} />
      {jobs.answer && jobs.items.length === 0 && (
        <div className="jp-mlops-muted">No jobs yet: submit a notebook or a script.</div>
      )}
      <ul className="jp-mlops-job-list" aria-label="My jobs">
        {jobs.items.slice(0, 50).map(job => (
          <ListRow
            key={job.id}
            state={job.state}
            name={`#${job.id} ${job.spec.path}`}
            testId={`job-${job.id}`}
            onClick={() => props.open(job)}
            title="Open the job: logs, links, cancel, rerun"
            aside={job.spec.gpus > 0 && <span className="jp-mlops-muted">{job.spec.gpus} GPU</span>}
          >
            {/* why it waits: in the platform's queue, or in the cluster's (Slurm, pods) */}
            {ACTIVE.has(job.state) && job.reason && (
              <div className="jp-mlops-job-reason">{job.reason}</div>
            )}
            {job.state === 'running' && <Progress progress={job.progress} />}
            {!ACTIVE.has(job.state) && job.state !== 'succeeded' && job.reason && (
              <div className="jp-mlops-job-reason">{job.reason}</div>
            )}
          </ListRow>
        ))}
      </ul>
      <GroupList
        kind="sweep"
        groups={sweeps.items}
        open={props.openGroup}
        name={g => `sweep #${g.id} ${g.path}`}
        detail={g => (
          <div className="jp-mlops-job-reason">
            {g.asked}/{g.n_trials} trials
            {g.best ? ` · best ${g.metric} ${Number(g.best.value).toPrecision(4)}` : ''}
          </div>
        )}
      />
      <GroupList
        kind="pipeline"
        groups={pipelines.items}
        open={props.openGroup}
        name={g => `pipeline #${g.id} ${g.name} · ${g.steps.length} steps`}
      />
    </div>
  );
}

/** The Jobs section widget. */
export class JobsPanel extends SidebarSection {
  private _prefill = '';

  constructor(
    private _model: IMlopsModel,
    private _open: (job: IJob) => void,
    private _openGroup: (kind: 'sweep' | 'pipeline', id: number) => void,
    private _openSubmitted: (kind: 'job' | 'sweep' | 'pipeline', id: number) => void
  ) {
    super('Jobs');
  }

  /** Load again; a `prefill` path opens the submit form with it. */
  refresh(prefill = ''): void {
    this._prefill = prefill;
    super.refresh();
  }

  render(): JSX.Element {
    return (
      <JobsList
        model={this._model}
        tick={this.tick}
        prefill={this._prefill}
        open={this._open}
        openGroup={this._openGroup}
        openSubmitted={this._openSubmitted}
      />
    );
  }
}

export function registerJobs(
  app: JupyterFrontEnd,
  sidebar: SidePanel,
  palette: ICommandPalette | null,
  model: IMlopsModel
): JobsPanel {
  // A list click opens (or brings forward) the object's tab; a submission replaces the tab of
  // the previous submission instead of adding one more.
  const openJob = (job: IJob, open: OpenTab = openInMainArea) =>
    open(
      app,
      `jp-mlops-job-${job.id}`,
      `Job #${job.id}`,
      <JobDetail
        jobId={job.id}
        app={app}
        open={openJob}
        onChanged={() => void model.jobs.refresh()}
      />
    );
  const openGroup = (kind: 'sweep' | 'pipeline', id: number, open: OpenTab = openInMainArea) =>
    open(
      app,
      `jp-mlops-${kind}-${id}`,
      `${kind === 'sweep' ? 'Sweep' : 'Pipeline'} #${id}`,
      kind === 'sweep' ? (
        <SweepView sweepId={id} openJob={jobId => openJob({ id: jobId } as IJob)} />
      ) : (
        <PipelineView pipelineId={id} openJob={jobId => openJob({ id: jobId } as IJob)} />
      )
    );
  const latest: OpenTab = (a, id, label, content) =>
    openAsLatest(a, 'jobs-submitted', id, label, content);
  const panel = new JobsPanel(
    model,
    job => openJob(job),
    (kind, id) => openGroup(kind, id),
    (kind, id) => (kind === 'job' ? openJob({ id } as IJob, latest) : openGroup(kind, id, latest))
  );
  sidebar.addWidget(panel);

  const currentPath = (): string => {
    const w: any = app.shell.currentWidget;
    return w?.context?.path || '';
  };
  app.commands.addCommand(CommandIDs.submitCurrentAsJob, {
    label: 'MLOps: submit this notebook as a job',
    caption: 'Run it as a job (papermill) on the platform, tracked in MLflow',
    icon: runIcon,
    execute: () => {
      app.shell.activateById(sidebar.id);
      panel.refresh(currentPath());
    }
  });
  app.commands.addCommand(CommandIDs.refreshJobs, {
    label: 'MLOps: refresh jobs',
    execute: () => panel.refresh()
  });
  app.commands.addCommand(CommandIDs.openJob, {
    label: 'MLOps: open a job',
    execute: args => openJob({ id: Number(args.id) } as IJob)
  });
  app.commands.addCommand(CommandIDs.openSweep, {
    label: 'MLOps: open a sweep',
    execute: args => openGroup('sweep', Number(args.id))
  });
  app.commands.addCommand(CommandIDs.openPipeline, {
    label: 'MLOps: open a pipeline',
    execute: args => openGroup('pipeline', Number(args.id))
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
  palette?.addItem({ command: CommandIDs.submitCurrentAsJob, category: 'MLOps' });
  palette?.addItem({ command: CommandIDs.refreshJobs, category: 'MLOps' });
  return panel;
}
