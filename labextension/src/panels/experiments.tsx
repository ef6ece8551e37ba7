/**
 * Experiments: a sidebar section listing the experiments of my projects; opening one shows a
 * main-area explorer (runs table, compare view); each run opens in a main-area tab of its own.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { Button, SidePanel } from '@jupyterlab/ui-components';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { usePolledList } from '../components/hooks';
import { openInMainArea } from '../components/mainArea';
import { SectionReload, SidebarSection } from '../components/sidebarSection';
import { getExperiment, IExperiment, IRunSummary } from '../api/experiments';
import { CommandIDs } from '../commands';
import { IMlopsList } from '../tokens';
import { CompareView } from '../experiments/compare';
import { openRunDetail } from '../experiments/runDetail';
import { RunsTable } from '../experiments/runsTable';

type View = { kind: 'runs' } | { kind: 'compare' };

/** The explorer of one experiment (main area); a run opens in a tab of its own (`onOpenRun`). */
export function ExperimentView(props: {
  experimentId: string;
  experiment?: IExperiment;
  onOpenRun: (run: IRunSummary) => void;
}): JSX.Element {
  const { experimentId } = props;
  // The runs table starts loading at once; the experiment's own record comes in parallel.
  const [experiment, setExperiment] = useState<IExperiment | null>(props.experiment ?? null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!experiment) {
      getExperiment(experimentId).then(setExperiment, e => setError(e.message));
    }
  }, [experimentId]);
  const [view, setView] = useState<View>({ kind: 'runs' });
  const [selected, setSelected] = useState<string[]>([]);
  const tab = (label: string, active: boolean, onClick: () => void, disabled = false) => (
    <Button
      minimal
      small
      role="tab"
      aria-selected={active}
      disabled={disabled}
      className={`jp-mlops-tab${active ? ' jp-mod-active' : ''}`}
      onClick={onClick}
    >
      {label}
    </Button>
  );
  return (
    <div className="jp-mlops-explorer">
      <header className="jp-mlops-explorer-head">
        <h2>{experiment?.name ?? `Experiment ${experimentId}`}</h2>
        {experiment && <span className="jp-mlops-chip">project: {experiment.project}</span>}
        {experiment && (
          <a
            className="jp-mlops-link"
            href={experiment.ui_url}
            target="_blank"
            rel="noopener noreferrer"
          >
            Open in MLflow ↗
          </a>
        )}
      </header>
      <ErrorLine error={error} />
      <div role="tablist" className="jp-mlops-tabs">
        {tab('Runs', view.kind === 'runs', () => setView({ kind: 'runs' }))}
        {tab(
          `Compare (${selected.length})`,
          view.kind === 'compare',
          () => setView({ kind: 'compare' }),
          selected.length < 2 || selected.length > 10
        )}
      </div>
      {/* The table stays mounted so its page, sort and filter survive a look at the compare view. */}
      <div hidden={view.kind !== 'runs'} className="jp-mlops-tabpanel">
        <RunsTable
          experimentId={experimentId}
          selected={selected}
          onSelect={setSelected}
          onOpenRun={props.onOpenRun}
          onCompare={() => setView({ kind: 'compare' })}
        />
      </div>
      {view.kind === 'compare' && (
        <div className="jp-mlops-tabpanel">
          <CompareView runIds={selected} />
        </div>
      )}
    </div>
  );
}

/** The sidebar list: experiments of my projects, grouped by project. */
function ExperimentsList(props: {
  experiments: IMlopsList<IExperiment>;
  tick: number;
  onOpen: (e: IExperiment) => void;
}): JSX.Element {
  const { answer: experiments, error, reload: load } = usePolledList(props.experiments, props.tick);
  const byProject = new Map<string, IExperiment[]>();
  for (const e of experiments ?? []) {
    byProject.set(e.project, [...(byProject.get(e.project) ?? []), e]);
  }
  return (
    <div className="jp-mlops-experiments" data-testid="experiments-list">
      <SectionReload tooltip="Reload experiments" onClick={() => void load()} />
      <ErrorLine error={error} />
      {experiments === null && !error && <div className="jp-mlops-muted">Loading experiments…</div>}
      {experiments?.length === 0 && (
        <div className="jp-mlops-muted">
          No experiments yet: <code>%mlops experiment NAME</code> in a notebook creates one.
        </div>
      )}
      {[...byProject.entries()].map(([project, exps]) => (
        <div key={project}>
          <div className="jp-mlops-group">{project}</div>
          <ul className="jp-mlops-list">
            {exps.map(e => (
              <li key={e.experiment_id}>
                <a
                  className="jp-mlops-link"
                  href="#"
                  onClick={ev => (ev.preventDefault(), props.onOpen(e))}
                >
                  {e.name}
                </a>
              </li>
            ))}
          </ul>
        </div>
      ))}
    </div>
  );
}

export class ExperimentsPanel extends SidebarSection {
  constructor(experiments: IMlopsList<IExperiment>, open: (e: IExperiment) => void) {
    super('Experiments', tick => (
      <ExperimentsList experiments={experiments} tick={tick} onOpen={open} />
    ));
  }
}

/**
 * Add the Experiments section to the MLOps sidebar and the command opening an experiment
 * (`mlops:open-experiment` with `{experimentId}`) in the main area.
 */
export function registerExperiments(
  app: JupyterFrontEnd,
  sidebar: SidePanel,
  palette: ICommandPalette | null,
  experiments: IMlopsList<IExperiment>
): ExperimentsPanel {
  const open = (experimentId: string, experiment?: IExperiment) =>
    openInMainArea(
      app,
      `jp-mlops-experiment-${experimentId}`,
      `Experiment: ${experiment?.name ?? experimentId}`,
      <ExperimentView
        experimentId={experimentId}
        experiment={experiment}
        onOpenRun={run => openRunDetail(app, run.run_id, run.run_name)}
      />
    );
  const panel = new ExperimentsPanel(experiments, e => open(e.experiment_id, e));
  sidebar.addWidget(panel);
  app.commands.addCommand(CommandIDs.openExperiment, {
    label: 'MLOps: open an experiment',
    execute: args => {
      const experimentId = args.experimentId as string | undefined;
      if (experimentId) {
        open(experimentId);
      } else {
        app.shell.activateById(sidebar.id);
        panel.refresh();
      }
    }
  });
  palette?.addItem({ command: CommandIDs.openExperiment, category: 'MLOps' });
  return panel;
}
