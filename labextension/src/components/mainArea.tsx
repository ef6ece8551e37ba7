import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

/**
 * The content of the main-area tab with this `id`, brought forward; a new tab holding
 * `create()`'s widget when there is none. Callers that show one object per tab (an image
 * viewer per dataset version, a run, a deployment) update the content they get back.
 */
export function openWidgetInMainArea<T extends Widget>(
  app: JupyterFrontEnd,
  id: string,
  create: () => T
): T {
  const existing = Array.from(app.shell.widgets('main')).find(w => w.id === id);
  if (existing instanceof MainAreaWidget) {
    app.shell.activateById(id);
    return existing.content as T;
  }
  const content = create();
  content.addClass('jp-mlops-main');
  const widget = new MainAreaWidget({ content });
  widget.id = id;
  widget.title.closable = true;
  app.shell.add(widget, 'main');
  app.shell.activateById(id);
  return content;
}

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
  openWidgetInMainArea(app, id, () => {
    const body = ReactWidget.create(content);
    body.title.label = label;
    return body;
  });
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
