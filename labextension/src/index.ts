import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { SidePanel, refreshIcon, ToolbarButton } from '@jupyterlab/ui-components';

import { mlopsIcon } from './icons';
import { StatusPanel } from './panels/status';
import { ProjectsPanel } from './panels/projects';
import { TemplatesPanel } from './panels/templates';
import { registerGettingStarted } from './panels/getting_started';
import { registerDatasets } from './panels/datasets';
import { registerExperiments } from './panels/experiments';
import { modelVersionActions, registerModels } from './panels/models';
import { registerJobs } from './panels/jobs';
import { registerDeployments } from './panels/deployments';
import { CommandIDs, IMlopsModel, IMlopsPoller, IModelVersionActions } from './tokens';
import { MlopsModel } from './models';
import { connectNotifications, openLink } from './notifications';
import { DEFAULT_INTERVAL_MS, labPoller } from './poller';

/**
 * The MLOps sidebar: one section per capability (platform status first).
 */
const sidebar: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlops:sidebar',
  description: 'The MLOps sidebar of jupyter-mlops.',
  autoStart: true,
  requires: [IMlopsModel],
  optional: [ILayoutRestorer, ICommandPalette, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    shared: IMlopsModel,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    settings: ISettingRegistry | null
  ) => {
    const panel = new SidePanel();
    panel.id = 'jp-mlops-sidebar';
    panel.title.icon = mlopsIcon;
    panel.title.caption = 'MLOps';
    panel.addClass('jp-mlops-sidebar');

    const heading = document.createElement('h2');
    heading.textContent = 'MLOps';
    heading.className = 'jp-mlops-heading';
    panel.header.node.appendChild(heading);

    // a new person's first steps (gone once done or dismissed)
    registerGettingStarted(app, panel, palette, settings, shared);
    const status = new StatusPanel();
    panel.addWidget(status);
    // the projects I belong to
    panel.addWidget(new ProjectsPanel(shared.projects));
    // copy the cell-detection reference project into the workspace
    panel.addWidget(new TemplatesPanel(app));
    // the dataset catalog (section + main-area browser)
    registerDatasets(app, panel, palette);
    // experiments (runs, compare, charts) and the model registry
    registerExperiments(app, panel, palette, shared.experiments);
    registerModels(app, panel, palette, shared.models);
    // jobs, sweeps and pipelines (+ a "Job" button on notebooks)
    registerJobs(app, panel, palette, shared);
    // deployments, and "Deploy" on every model version
    registerDeployments(app, panel, palette, shared);
    panel.toolbar.addItem(
      'refresh',
      new ToolbarButton({
        icon: refreshIcon,
        tooltip: 'Check the platform again',
        onClick: () => status.refresh()
      })
    );

    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, 'jupyter-mlops-sidebar');

    app.commands.addCommand(CommandIDs.openSidebar, {
      label: 'Open the MLOps sidebar',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand(CommandIDs.refreshStatus, {
      label: 'MLOps: check the platform again',
      execute: () => status.refresh()
    });
    palette?.addItem({ command: CommandIDs.openSidebar, category: 'MLOps' });
    palette?.addItem({ command: CommandIDs.refreshStatus, category: 'MLOps' });
  }
};

/**
 * The shared poller (interval from this plugin's `refreshInterval` setting) and the lab's
 * notifications of the platform's news: my job, sweep or pipeline ended, someone changed my
 * deployment, an approval waits for me.
 */
const live: JupyterFrontEndPlugin<IMlopsPoller> = {
  id: 'jupyter-mlops:plugin',
  description: 'Live panels and notifications of jupyter-mlops.',
  autoStart: true,
  provides: IMlopsPoller,
  optional: [ISettingRegistry],
  activate: (app: JupyterFrontEnd, settings: ISettingRegistry | null): IMlopsPoller => {
    app.commands.addCommand(CommandIDs.openLink, {
      label: 'MLOps: open what a notification is about',
      execute: args => openLink(app, String(args.link ?? ''))
    });
    const apply = (s: ISettingRegistry.ISettings) => {
      labPoller.interval = (s.get('refreshInterval').composite as number) ?? DEFAULT_INTERVAL_MS;
    };
    const start = () => app.restored.then(() => labPoller.start());
    if (!settings) {
      void start();
      return labPoller;
    }
    settings
      .load(live.id)
      .then(s => {
        apply(s);
        s.changed.connect(apply);
      })
      .catch(reason =>
        console.warn('jupyter-mlops: settings not loaded, polling every 3 s', reason)
      )
      .finally(() => void start());
    return labPoller;
  }
};

/**
 * The state several views share (jobs, sweeps, pipelines, deployments, projects, experiments,
 * registered models, notifications), fed by the poller; the lab shows each new notification
 * with JupyterLab's notifications.
 */
const model: JupyterFrontEndPlugin<IMlopsModel> = {
  id: 'jupyter-mlops:model',
  description:
    'Jobs, deployments, projects, experiments, models and notifications of jupyter-mlops, shared by its views.',
  autoStart: true,
  provides: IMlopsModel,
  requires: [IMlopsPoller],
  activate: (app: JupyterFrontEnd, poller: IMlopsPoller): IMlopsModel => {
    const shared = new MlopsModel(poller);
    connectNotifications(app, shared.notifications);
    return shared;
  }
};

/** The registry of model-version actions, for other plugins to add theirs. */
const versionActions: JupyterFrontEndPlugin<IModelVersionActions> = {
  id: 'jupyter-mlops:model-version-actions',
  description: 'Buttons on every model version of jupyter-mlops.',
  autoStart: true,
  provides: IModelVersionActions,
  activate: (): IModelVersionActions => modelVersionActions
};

export default [sidebar, live, model, versionActions];
