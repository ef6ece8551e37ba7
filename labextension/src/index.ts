import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { SidePanel, refreshIcon, ToolbarButton } from '@jupyterlab/ui-components';

import { mlopsIcon } from './icons';
import { StatusPanel } from './panels/status';
import { ProjectsPanel } from './panels/projects';
import { TemplatesPanel } from './panels/templates';
import { registerDatasets } from './panels/datasets';
import { registerExperiments } from './panels/experiments';
import { registerModels } from './panels/models';
import { registerJobs } from './panels/jobs';
import { registerDeployments } from './panels/deployments';
import { CommandIDs } from './tokens';

/**
 * The MLOps sidebar: one section per capability (platform status first).
 */
const sidebar: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-mlops:sidebar',
  description: 'The MLOps sidebar of jupyter-mlops.',
  autoStart: true,
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
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

    const status = new StatusPanel();
    panel.addWidget(status);
    // the projects I belong to
    panel.addWidget(new ProjectsPanel());
    // copy the cell-detection reference project into the workspace
    panel.addWidget(new TemplatesPanel(app));
    // the dataset catalog (section + main-area browser)
    registerDatasets(app, panel, palette);
    // experiments (runs, compare, charts) and the model registry
    registerExperiments(app, panel, palette);
    registerModels(app, panel, palette);
    // jobs, sweeps and pipelines (+ a "Job" button on notebooks)
    registerJobs(app, panel, palette);
    // deployments, and "Deploy" on every model version
    registerDeployments(app, panel, palette);
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

export default [sidebar];
