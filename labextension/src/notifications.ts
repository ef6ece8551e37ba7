/**
 * The caller's notifications from the platform, shown with JupyterLab's own notification API
 * (toasts and the notification center), each with an action opening what it is about.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';

import { CommandIDs } from './commands';
import { IMlopsModel, INotification } from './tokens';

/** What the action of a notification opens: an `mlops:<kind>/<id>` object or a URL. */
export function openLink(app: JupyterFrontEnd, link: string): void {
  const m = /^mlops:([a-z-]+)\/(.+)$/.exec(link);
  if (!m) {
    window.open(link, '_blank', 'noopener');
    return;
  }
  const [, kind, id] = m;
  const commands: { [kind: string]: [string, any] } = {
    jobs: [CommandIDs.openJob, { id: Number(id) }],
    sweeps: [CommandIDs.openSweep, { id: Number(id) }],
    pipelines: [CommandIDs.openPipeline, { id: Number(id) }],
    experiments: [CommandIDs.openExperiment, { experimentId: id }],
    deployments: [CommandIDs.refreshDeployments, { name: id }]
  };
  const [command, args] = commands[kind] ?? [CommandIDs.openSidebar, {}];
  if (kind === 'deployments') {
    void app.commands.execute(CommandIDs.openSidebar);
  }
  void app.commands.execute(command, args);
}

/** Show one notification in the lab, with an "Open" action when it links somewhere. */
export function showNotification(
  app: JupyterFrontEnd,
  n: INotification,
  markRead: (id: number) => Promise<void>
): void {
  const actions: Notification.IAction[] = n.link
    ? [
        {
          label: n.link.startsWith('mlops:') ? 'Open' : 'Open ↗',
          caption: `Open ${n.link}`,
          callback: () => openLink(app, n.link as string)
        }
      ]
    : [];
  const show = n.level === 'warning' ? Notification.warning : Notification.info;
  show(n.message, { actions, autoClose: n.level === 'warning' ? false : 8000 });
  // In the lab's notification center from now on: read in the feed.
  void markRead(n.id).catch(() => {
    // a blip: it stays unread and is shown again after a reload, which is harmless
  });
}

/** Show every notification that arrives in the lab's notifications model. */
export function connectNotifications(
  app: JupyterFrontEnd,
  model: IMlopsModel['notifications']
): void {
  model.changed.connect((_, fresh) => {
    for (const n of fresh) {
      showNotification(app, n, id => model.markRead(id));
    }
  });
}
