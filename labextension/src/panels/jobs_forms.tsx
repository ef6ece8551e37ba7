import { Button } from '@jupyterlab/ui-components';
import React, { useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { NumberField, SelectField, TextField } from '../components/fields';
import { useSubmit } from '../components/hooks';
import { parseParams } from './job_detail';

const SPACE_EXAMPLE = `lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
epochs: {type: int, low: 2, high: 8}`;

const PIPELINE_EXAMPLE = `name: retrain
steps:
  - {name: prepare, run: prepare.py}
  - {name: train, run: train.ipynb, needs: [prepare], gpus: 1}
  - {name: evaluate, run: evaluate.py, needs: [train]}`;

/**
 * A form of the Jobs section: on submit it POSTs `body()` to `path` and hands the answer to
 * `onDone`; a failure (also a body that cannot be built, e.g. bad parameters) shows above
 * the one submit button.
 */
export function JobForm<T>(props: {
  label: string;
  path: string;
  submitLabel: string;
  body: () => any;
  onDone: (answer: T) => void;
  children: React.ReactNode;
}): JSX.Element {
  const [submit, error, busy] = useSubmit<T>(props.path, props.onDone);
  return (
    <form
      className="jp-mlops-job-form"
      aria-label={props.label}
      onSubmit={e => {
        e.preventDefault();
        void submit(props.body);
      }}
    >
      {props.children}
      <ErrorLine error={error} />
      <Button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy}>
        {props.submitLabel}
      </Button>
    </form>
  );
}

/** Start an Optuna sweep: each trial a job and an MLflow child run. */
export function SweepForm(props: { path: string; onDone: (id: number) => void }): JSX.Element {
  const [path, setPath] = useState(props.path);
  const [metric, setMetric] = useState('');
  const [maximize, setMaximize] = useState(true);
  const [trials, setTrials] = useState(10);
  const [parallel, setParallel] = useState(2);
  const [sampler, setSampler] = useState('tpe');
  const [pruner, setPruner] = useState('median');
  const [space, setSpace] = useState(SPACE_EXAMPLE);
  const [params, setParams] = useState('');
  const [gpus, setGpus] = useState(0);
  return (
    <JobForm<{ id: number }>
      label="Start a sweep"
      path="sweeps"
      submitLabel="Start sweep"
      onDone={s => props.onDone(s.id)}
      body={() => ({
        path,
        metric,
        direction: maximize ? 'maximize' : 'minimize',
        trials,
        parallel,
        sampler,
        pruner,
        space,
        gpus,
        params: parseParams(params)
      })}
    >
      <TextField label="Notebook or script" value={path} onChange={setPath} />
      <div className="jp-mlops-job-form-row">
        <TextField label="Metric" value={metric} placeholder="val_map" onChange={setMetric} />
        <SelectField
          label="Goal"
          value={maximize ? 'max' : 'min'}
          options={[
            { value: 'max', label: 'maximize' },
            { value: 'min', label: 'minimize' }
          ]}
          onChange={v => setMaximize(v === 'max')}
        />
      </div>
      <TextField label="Search space (YAML)" rows={4} value={space} onChange={setSpace} />
      <div className="jp-mlops-job-form-row">
        <NumberField label="Trials" min={1} value={trials} onChange={setTrials} />
        <NumberField label="At a time" min={1} value={parallel} onChange={setParallel} />
        <NumberField label="GPUs each" min={0} value={gpus} onChange={setGpus} />
      </div>
      <div className="jp-mlops-job-form-row">
        <SelectField
          label="Sampler"
          value={sampler}
          options={[
            { value: 'tpe', label: 'TPE' },
            { value: 'random', label: 'random' },
            { value: 'grid', label: 'grid' }
          ]}
          onChange={setSampler}
        />
        <SelectField
          label="Pruning"
          value={pruner}
          options={[
            { value: 'median', label: 'median' },
            { value: 'hyperband', label: 'Hyperband' },
            { value: 'none', label: 'none' }
          ]}
          onChange={setPruner}
        />
      </div>
      <TextField
        label="Fixed parameters"
        value={params}
        placeholder="epochs=3"
        onChange={setParams}
      />
    </JobForm>
  );
}

/** Submit a pipeline (YAML: steps with params and needs, optional cron schedule). */
export function PipelineForm(props: { onDone: (id: number) => void }): JSX.Element {
  const [spec, setSpec] = useState(PIPELINE_EXAMPLE);
  return (
    <JobForm<{ id: number }>
      label="Submit a pipeline"
      path="pipelines"
      submitLabel="Submit pipeline"
      onDone={p => props.onDone(p.id)}
      body={() => ({ spec })}
    >
      <TextField
        label={
          <>
            Pipeline (YAML; add <code>schedule: "0 3 * * *"</code> to retrain on a schedule)
          </>
        }
        rows={7}
        value={spec}
        onChange={setSpec}
      />
    </JobForm>
  );
}
