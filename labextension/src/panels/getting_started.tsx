/**
 * "Getting started": a new person's first minutes, guided by the sidebar alone. Three steps,
 * each marked done from the platform's real state, not from clicks:
 *
 * 1. the shared dataset: where it is mounted, how many images it holds, open it;
 * 2. a first run: a short example notebook (written into the workspace, then opened) that logs
 *    parameters, a metric and a model with MLflow 3's standard calls; done once a run of the
 *    person exists;
 * 3. the same notebook as a job: the Jobs form prefilled with it; done once a job of theirs
 *    exists.
 *
 * The section goes away once every step is done, or when dismissed (kept in the
 * `gettingStartedDismissed` setting of `jupyter-mlops:plugin`, so it stays away). The palette's
 * "MLOps: show Getting started" brings it back, and then it stays until dismissed again.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { Button, SidePanel } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { CommandIDs } from '../commands';
import { ErrorLine } from '../components/errorLine';
import { usePolledList, useRemote } from '../components/hooks';
import { SidebarSection } from '../components/sidebarSection';
import { listDatasets } from '../api/datasets';
import { IExperiment, listRuns } from '../api/experiments';
import { getStatus } from '../api/status';
import { IMlopsModel } from '../tokens';
import { exampleNotebook } from './getting_started_notebook';

/** The plugin whose settings keep the dismissal. */
const SETTINGS_PLUGIN = 'jupyter-mlops:plugin';
const DISMISSED = 'gettingStartedDismissed';
/** Where the example notebook is written, relative to the workspace. */
export const EXAMPLE_NOTEBOOK = 'getting-started/first_run.ipynb';
/** The workspace's link to the shared dataset (the spawner makes it). */
const DATASET_LINK = 'datasets';
/** How many of the most recently updated experiments are searched for the person's runs. */
const EXPERIMENTS_SEARCHED = 20;

/** What the section shows once: the dataset's mount and the catalog's image counts. */
interface ISetup {
  user: string;
  datasetPath: string;
  /** Whether the workspace has the `datasets` link the file browser can open. */
  linked: boolean;
  /** `cells v3: 1,200 images` per dataset of the catalog with a version. */
  images: { name: string; version: string; images: number }[];
}

async function loadSetup(app: JupyterFrontEnd): Promise<ISetup> {
  const [status, catalog, linked] = await Promise.all([
    getStatus(),
    listDatasets().catch(() => ({ datasets: [] })),
    app.serviceManager.contents.get(DATASET_LINK, { content: false }).then(
      m => m.type === 'directory',
      () => false
    )
  ]);
  return {
    user: status.user.name,
    datasetPath: status.dataset.path,
    linked,
    images: catalog.datasets
      .filter(d => d.latest)
      .map(d => ({ name: d.name, version: d.latest!.version, images: d.latest!.summary.images }))
  };
}

/** Whether the person has a run (in the most recently updated of `experiments`). */
async function loadHasRun(user: string, experiments: readonly IExperiment[]): Promise<boolean> {
  const recent = [...experiments]
    .sort((a, b) => (b.last_update_time ?? 0) - (a.last_update_time ?? 0))
    .slice(0, EXPERIMENTS_SEARCHED);
  // user names are hub names ([a-z0-9._-]): no quote to escape in the filter
  const filter = `tags.\`mlops.user\` = '${user.replace(/'/g, '')}'`;
  const pages = await Promise.all(
    recent.map(e => listRuns(e.experiment_id, { filter, max: 1 }).catch(() => ({ runs: [] })))
  );
  return pages.some(p => p.runs.length > 0);
}

function Step(props: {
  n: number;
  id: string;
  title: string;
  done: boolean;
  children: React.ReactNode;
}): JSX.Element {
  return (
    <li
      className={`jp-mlops-gs-step${props.done ? ' jp-mlops-gs-done' : ''}`}
      data-testid={`getting-started-${props.id}`}
      data-done={props.done ? 'true' : 'false'}
    >
      <span className="jp-mlops-gs-mark" aria-hidden="true">
        {props.done ? '✓' : props.n}
      </span>
      <div className="jp-mlops-gs-body">
        <div className="jp-mlops-gs-title">
          {props.title}
          {props.done && <span className="jp-mlops-visually-hidden"> (done)</span>}
        </div>
        {props.children}
      </div>
    </li>
  );
}

function GettingStartedView(props: {
  app: JupyterFrontEnd;
  model: IMlopsModel;
  tick: number;
  onFinished: () => void;
  onDismiss: () => void;
}): JSX.Element {
  const { app } = props;
  const setup = useRemote(() => loadSetup(app), [props.tick], { live: false });
  const user = setup.data?.user ?? '';
  const [finished, setFinished] = useState(false);
  // the experiments and my jobs as every view shows them; the runs searched here
  const experiments = usePolledList(props.model.experiments, props.tick);
  const jobs = usePolledList(props.model.jobs, props.tick);
  const progress = useRemote(
    () => loadHasRun(user, experiments.items),
    [user, props.tick, experiments.items],
    {
      auto: !!user && experiments.answer !== null,
      live: !finished
    }
  );
  const [datasetOpened, setDatasetOpened] = useState(false);
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);

  const hasRun = !!progress.data;
  const hasJob = jobs.items.length > 0;
  const datasetDone = datasetOpened || hasRun;
  const allDone = datasetDone && hasRun && hasJob;
  const { onFinished } = props;
  useEffect(() => {
    if (allDone && !finished) {
      setFinished(true);
      onFinished();
    }
  }, [allDone, finished, onFinished]);

  const act = async (what: string, work: () => Promise<void>) => {
    setBusy(what);
    setError(null);
    try {
      await work();
    } catch (e: any) {
      setError(e.message ?? String(e));
    } finally {
      setBusy(null);
    }
  };

  const openDataset = () =>
    act('dataset', async () => {
      await app.commands.execute('filebrowser:go-to-path', { path: DATASET_LINK });
      setDatasetOpened(true);
    });

  /** Write the example notebook unless it is there already (never overwrite the person's edits). */
  const ensureNotebook = async () => {
    const contents = app.serviceManager.contents;
    const there = await contents.get(EXAMPLE_NOTEBOOK, { content: false }).then(
      () => true,
      () => false
    );
    if (!there) {
      const folder = EXAMPLE_NOTEBOOK.split('/')[0];
      await contents
        .get(folder, { content: false })
        .catch(() => contents.save(folder, { type: 'directory' }));
      await contents.save(EXAMPLE_NOTEBOOK, {
        type: 'notebook',
        format: 'json',
        content: exampleNotebook(setup.data?.datasetPath ?? '')
      });
    }
  };

  const openNotebook = () =>
    act('notebook', async () => {
      await ensureNotebook();
      await app.commands.execute('docmanager:open', { path: EXAMPLE_NOTEBOOK });
    });

  const submitAsJob = () =>
    act('job', async () => {
      await ensureNotebook();
      // the Jobs form takes the path of the notebook in front
      await app.commands.execute('docmanager:open', { path: EXAMPLE_NOTEBOOK });
      await app.commands.execute(CommandIDs.submitCurrentAsJob);
    });

  if (setup.error && !setup.data) {
    return <ErrorLine error={setup.error} />;
  }
  if (!setup.data) {
    return <div className="jp-mlops-muted">Loading…</div>;
  }
  const s = setup.data;
  return (
    <div className="jp-mlops-getting-started" data-testid="getting-started">
      <ol className="jp-mlops-gs-steps">
        <Step n={1} id="dataset" title="The shared dataset" done={datasetDone}>
          <div className="jp-mlops-gs-text">
            Mounted read-only at <code>{s.datasetPath || 'not configured'}</code>
            {s.linked && (
              <>
                {' '}
                (<code>~/{DATASET_LINK}</code>)
              </>
            )}
            .
          </div>
          <div className="jp-mlops-gs-text" data-testid="getting-started-images">
            {s.images.length
              ? s.images
                  .map(d => `${d.name} ${d.version}: ${d.images.toLocaleString()} images`)
                  .join(' · ')
              : 'No dataset version published in the catalog yet.'}
          </div>
          {s.linked && (
            <Button small onClick={openDataset} disabled={busy !== null}>
              Open in the file browser
            </Button>
          )}
        </Step>
        <Step n={2} id="run" title="Log your first run" done={hasRun}>
          <div className="jp-mlops-gs-text">
            A short notebook logs parameters, a metric and a model to MLflow in a few seconds on
            CPU. Run it; the run shows under Experiments.
          </div>
          <Button small onClick={openNotebook} disabled={busy !== null}>
            {busy === 'notebook' ? 'Opening…' : 'Open the example notebook'}
          </Button>
        </Step>
        <Step n={3} id="job" title="Run it as a job" done={hasJob}>
          <div className="jp-mlops-gs-text">
            Jobs run on the platform (GPUs when asked for) and outlive your server.
          </div>
          <Button small onClick={submitAsJob} disabled={busy !== null}>
            {busy === 'job' ? 'Opening…' : 'Submit it as a job'}
          </Button>
        </Step>
      </ol>
      <ErrorLine error={error ?? progress.error ?? experiments.error ?? jobs.error} />
      <div className="jp-mlops-gs-foot">
        <Button small minimal onClick={props.onDismiss} title="Hide this section for good">
          Dismiss
        </Button>
      </div>
    </div>
  );
}

/**
 * The "Getting started" section, first in the MLOps sidebar. It disposes of itself once done
 * or dismissed, and is not shown at all when the setting says it was dismissed. Asked for
 * again (`asked`), it shows whatever the setting says and stays once its steps are done:
 * the person wants to read it.
 */
export class GettingStartedPanel extends SidebarSection {
  constructor(
    private _app: JupyterFrontEnd,
    private _model: IMlopsModel,
    private _settings: ISettingRegistry | null,
    private _asked = false
  ) {
    super('Getting started');
    this.addClass('jp-mlops-getting-started-section');
    this.title.caption = 'Your first minutes on the platform';
    this.id = 'jp-mlops-getting-started';
    if (this._asked) {
      return;
    }
    this._settings
      ?.load(SETTINGS_PLUGIN)
      .then(s => {
        if (s.get(DISMISSED).composite === true) {
          this._gone();
        }
      })
      .catch(reason => console.warn('jupyter-mlops: getting-started setting not read', reason));
  }

  private _gone = () => {
    // not from inside the section's own React render: after it
    window.setTimeout(() => {
      if (!this.isDisposed) {
        this.dispose();
      }
    }, 0);
  };

  private _dismiss = () => {
    this._gone();
    this._settings
      ?.load(SETTINGS_PLUGIN)
      .then(s => s.set(DISMISSED, true))
      .catch(reason => console.warn('jupyter-mlops: dismissal not kept', reason));
  };

  render(): JSX.Element {
    return (
      <GettingStartedView
        app={this._app}
        model={this._model}
        tick={this.tick}
        onFinished={this._asked ? () => undefined : this._gone}
        onDismiss={this._dismiss}
      />
    );
  }
}

/**
 * Put the section first in the sidebar, and add the palette's "MLOps: show Getting started",
 * which brings a dismissed or finished section back (and forgets the dismissal).
 */
export function registerGettingStarted(
  app: JupyterFrontEnd,
  sidebar: SidePanel,
  palette: ICommandPalette | null,
  settings: ISettingRegistry | null,
  model: IMlopsModel
): void {
  let section = new GettingStartedPanel(app, model, settings);
  sidebar.insertWidget(0, section);
  app.commands.addCommand(CommandIDs.showGettingStarted, {
    label: 'MLOps: show Getting started',
    execute: async () => {
      if (section.isDisposed) {
        section = new GettingStartedPanel(app, model, settings, true);
        sidebar.insertWidget(0, section);
      }
      app.shell.activateById(sidebar.id);
      await settings
        ?.load(SETTINGS_PLUGIN)
        .then(s => s.set(DISMISSED, false))
        .catch(reason => console.warn('jupyter-mlops: dismissal not forgotten', reason));
    }
  });
  palette?.addItem({ command: CommandIDs.showGettingStarted, category: 'MLOps' });
}
