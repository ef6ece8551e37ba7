import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';

/**
 * Show `content` as a closable main-area tab with this `id`, or bring the tab forward if it is
 * open already (opening a job or an experiment twice must not make two live pollers).
 */
export function openInMainArea(
  app: JupyterFrontEnd,
  id: string,
  label: string,
  content: JSX.Element
): void {
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

/** The tab each "latest" slot shows (e.g. the job just submitted). */
const latestTabs = new Map<string, string>();

/**
 * Like `openInMainArea`, for what replaces the last thing shown in `slot`: the tab the slot
 * opened before is closed first, so submitting job after job does not pile up tabs.
 */
export function openAsLatest(
  app: JupyterFrontEnd,
  slot: string,
  id: string,
  label: string,
  content: JSX.Element
): void {
  const previous = latestTabs.get(slot);
  if (previous && previous !== id) {
    Array.from(app.shell.widgets('main'))
      .find(w => w.id === previous)
      ?.close();
  }
  latestTabs.set(slot, id);
  openInMainArea(app, id, label, content);
}
