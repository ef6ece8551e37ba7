/**
 * "Batch predict…" on a model version (Models section): choose a dataset version and a project,
 * submit, then follow the job it became (state, progress) until its predictions.csv and
 * predictions.json can be opened. The job is an ordinary one: it also shows in the Jobs section.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Button, HTMLSelect } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { NameSelect } from '../components/fields';
import { getDataset, IDataset, IDatasetDetail, listDatasets } from '../api/datasets';
import { getJob, IBatchPrediction, IJob, submitBatchPrediction } from '../api/jobs';
import { IModelVersion } from '../api/models';
import { listProjects } from '../api/projects';
import { ACTIVE, Progress, StateBadge } from './job_detail';
import { CommandIDs } from '../commands';

/** Follow a submitted batch prediction until its job ends. */
function BatchJob(props: { app: JupyterFrontEnd; batch: IBatchPrediction }): JSX.Element {
  const { app, batch } = props;
  const [job, setJob] = useState<IJob>(batch.job);
  useEffect(() => {
    if (!ACTIVE.has(job.state)) {
      return;
    }
    const timer = window.setTimeout(() => {
      getJob(job.id)
        .then(setJob)
        .catch(() => setJob({ ...job })); // a blip: try again on the next round
    }, 1500);
    return () => window.clearTimeout(timer);
  }, [job]);
  const open = (path: string) => void app.commands.execute('docmanager:open', { path });
  return (
    <div className="jp-mlops-batch-job" data-testid="batch-job" data-state={job.state}>
      <div>
        Job{' '}
        <a
          className="jp-mlops-link"
          href="#"
          onClick={e => (
            e.preventDefault(),
            void app.commands.execute(CommandIDs.openJob, { id: job.id })
          )}
        >
          #{job.id}
        </a>{' '}
        <StateBadge state={job.state} />{' '}
        <span className="jp-mlops-muted-inline">
          {batch.files} file{batch.files === 1 ? '' : 's'} of {batch.dataset}@
          {batch.dataset_version}
        </span>
      </div>
      <Progress progress={job.progress} />
      {job.state === 'succeeded' && (
        <div className="jp-mlops-batch-outputs">
          Predictions:{' '}
          <a
            className="jp-mlops-link"
            href="#"
            onClick={e => (e.preventDefault(), open(batch.outputs.csv))}
          >
            predictions.csv
          </a>{' '}
          ·{' '}
          <a
            className="jp-mlops-link"
            href="#"
            onClick={e => (e.preventDefault(), open(batch.outputs.json))}
          >
            predictions.json
          </a>
          <span className="jp-mlops-muted-inline">
            {' '}
            (also artifacts {batch.outputs.artifact_path}/ of the job's MLflow run)
          </span>
        </div>
      )}
      {job.state !== 'succeeded' && !ACTIVE.has(job.state) && (
        <div className="jp-mlops-error" role="alert">
          The job {job.state}
          {job.reason ? `: ${job.reason}` : ''}. Open the job for its log.
        </div>
      )}
    </div>
  );
}

/** The form under a model version. */
export function BatchPredictForm(props: {
  app: JupyterFrontEnd;
  version: IModelVersion;
  onClose: () => void;
}): JSX.Element {
  const { app, version } = props;
  const [datasets, setDatasets] = useState<IDataset[] | null>(null);
  const [dataset, setDataset] = useState('');
  const [detail, setDetail] = useState<IDatasetDetail | null>(null);
  const [ref, setRef] = useState('');
  const [projects, setProjects] = useState<string[]>(['default']);
  const [project, setProject] = useState('default');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [batch, setBatch] = useState<IBatchPrediction | null>(null);
  useEffect(() => {
    listDatasets()
      .then(r => {
        setDatasets(r.datasets);
        if (r.datasets.length) {
          setDataset(r.datasets[0].name);
        }
      })
      .catch(e => setError(e.message));
    listProjects()
      .then(r => setProjects(r.projects.map(p => p.name)))
      .catch(() => undefined); // the default project still works
  }, []);
  useEffect(() => {
    if (!dataset) {
      return;
    }
    let current = true; // until another dataset is chosen: a late answer for this one is stale
    setDetail(null);
    getDataset(dataset)
      .then(d => {
        if (current) {
          setDetail(d);
          setRef(d.versions[0]?.version ?? '');
        }
      })
      .catch(e => current && setError(e.message));
    return () => {
      current = false;
    };
  }, [dataset]);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setBatch(
        await submitBatchPrediction({
          model_name: version.name,
          version: String(version.version),
          dataset,
          dataset_version: ref,
          project
        })
      );
      void app.commands.execute(CommandIDs.refreshJobs);
    } catch (err: any) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  const label = `${version.name} v${version.version}`;
  return (
    <div className="jp-mlops-batch" data-testid={`batch-${version.name}-${version.version}`}>
      <form
        className="jp-mlops-inline-form"
        onSubmit={submit}
        aria-label={`Batch predict with ${label}`}
      >
        <NameSelect
          label="Dataset to predict"
          value={dataset}
          options={(datasets ?? []).map(d => d.name)}
          onChange={setDataset}
        />
        <HTMLSelect
          className="jp-mlops-select"
          aria-label="Dataset version"
          value={ref}
          onChange={e => setRef(e.target.value)}
        >
          {(detail?.versions ?? []).map(v => (
            <option key={v.version} value={v.version}>
              {v.version}
              {Object.entries(detail?.tags ?? {})
                .filter(([, tv]) => tv === v.version)
                .map(([t]) => ` @${t}`)
                .join('')}{' '}
              ({v.summary.files} files)
            </option>
          ))}
        </HTMLSelect>
        <NameSelect
          label="Project of the job"
          value={project}
          options={projects}
          onChange={setProject}
        />
        <Button type="submit" small disabled={busy || !dataset || !ref}>
          {busy ? 'Submitting…' : 'Predict'}
        </Button>
        <Button small minimal onClick={props.onClose}>
          Close
        </Button>
      </form>
      {datasets?.length === 0 && (
        <div className="jp-mlops-muted">No dataset in the catalog yet: publish one first.</div>
      )}
      <ErrorLine error={error} />
      {batch && <BatchJob key={batch.job.id} app={app} batch={batch} />}
    </div>
  );
}
