import React, { useState } from 'react';

import { requestAPI } from '../request';
import { parseParams } from './job_detail';

const SPACE_EXAMPLE = `lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
epochs: {type: int, low: 2, high: 8}`;

const PIPELINE_EXAMPLE = `name: retrain
steps:
  - {name: prepare, run: prepare.py}
  - {name: train, run: train.ipynb, needs: [prepare], gpus: 1}
  - {name: evaluate, run: evaluate.py, needs: [train]}`;

function useSubmit<T>(
  path: string,
  onDone: (answer: T) => void
): [(body: () => any) => Promise<void>, string | null, boolean] {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (body: () => any) => {
    setBusy(true);
    try {
      const answer = await requestAPI<T>(path, {
        method: 'POST',
        body: JSON.stringify(body())
      });
      setError(null);
      onDone(answer);
    } catch (e: any) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  return [submit, error, busy];
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
  const [submit, error, busy] = useSubmit<{ id: number }>('sweeps', s => props.onDone(s.id));
  return (
    <form
      className="jp-mlops-job-form"
      aria-label="Start a sweep"
      onSubmit={e => {
        e.preventDefault();
        void submit(() => ({
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
        }));
      }}
    >
      <label>
        Notebook or script
        <input className="jp-mod-styled" value={path} onChange={e => setPath(e.target.value)} />
      </label>
      <div className="jp-mlops-job-form-row">
        <label>
          Metric
          <input
            className="jp-mod-styled"
            value={metric}
            placeholder="val_map"
            onChange={e => setMetric(e.target.value)}
          />
        </label>
        <label>
          Goal
          <select
            className="jp-mod-styled"
            value={maximize ? 'max' : 'min'}
            onChange={e => setMaximize(e.target.value === 'max')}
          >
            <option value="max">maximize</option>
            <option value="min">minimize</option>
          </select>
        </label>
      </div>
      <label>
        Search space (YAML)
        <textarea
          className="jp-mod-styled jp-mlops-yaml"
          rows={4}
          value={space}
          onChange={e => setSpace(e.target.value)}
        />
      </label>
      <div className="jp-mlops-job-form-row">
        <label>
          Trials
          <input
            className="jp-mod-styled"
            type="number"
            min={1}
            value={trials}
            onChange={e => setTrials(parseInt(e.target.value || '1', 10))}
          />
        </label>
        <label>
          At a time
          <input
            className="jp-mod-styled"
            type="number"
            min={1}
            value={parallel}
            onChange={e => setParallel(parseInt(e.target.value || '1', 10))}
          />
        </label>
        <label>
          GPUs each
          <input
            className="jp-mod-styled"
            type="number"
            min={0}
            value={gpus}
            onChange={e => setGpus(parseInt(e.target.value || '0', 10))}
          />
        </label>
      </div>
      <div className="jp-mlops-job-form-row">
        <label>
          Sampler
          <select
            className="jp-mod-styled"
            value={sampler}
            onChange={e => setSampler(e.target.value)}
          >
            <option value="tpe">TPE</option>
            <option value="random">random</option>
            <option value="grid">grid</option>
          </select>
        </label>
        <label>
          Pruning
          <select className="jp-mod-styled" value={pruner} onChange={e => setPruner(e.target.value)}>
            <option value="median">median</option>
            <option value="hyperband">Hyperband</option>
            <option value="none">none</option>
          </select>
        </label>
      </div>
      <label>
        Fixed parameters
        <input
          className="jp-mod-styled"
          value={params}
          placeholder="epochs=3"
          onChange={e => setParams(e.target.value)}
        />
      </label>
      {error && (
        <div className="jp-mlops-error" role="alert">
          {error}
        </div>
      )}
      <button type="submit" className="jp-Button jp-mod-styled jp-mod-accept" disabled={busy}>
        Start sweep
      </button>
    </form>
  );
}

/** Submit a pipeline (YAML: steps with params and needs, optional cron schedule). */
export function PipelineForm(props: { onDone: (id: number) => void }): JSX.Element {
  const [spec, setSpec] = useState(PIPELINE_EXAMPLE);
  const [submit, error, busy] = useSubmit<{ id: number }>('pipelines', p => props.onDone(p.id));
  return (
    <form
      className="jp-mlops-job-form"
      aria-label="Submit a pipeline"
      onSubmit={e => {
        e.preventDefault();
        void submit(() => ({ spec }));
      }}
    >
      <label>
        Pipeline (YAML; add <code>schedule: "0 3 * * *"</code> to retrain on a schedule)
        <textarea
          className="jp-mod-styled jp-mlops-yaml"
          rows={7}
          value={spec}
          onChange={e => setSpec(e.target.value)}
        />
      </label>
      {error && (
        <div className="jp-mlops-error" role="alert">
          {error}
        </div>
      )}
      <button type="submit" className="jp-Button jp-mod-styled jp-mod-accept" disabled={busy}>
        Submit pipeline
      </button>
    </form>
  );
}
