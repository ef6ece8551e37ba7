import { ReactWidget } from '@jupyterlab/ui-components';

/**
 * One section of the MLOps sidebar. `refresh()` bumps `tick`, which a section passes to its
 * view as a prop: the view reloads on a new tick without the widget holding any data itself.
 */
export abstract class SidebarSection extends ReactWidget {
  protected tick = 0;

  constructor(label: string) {
    super();
    this.addClass('jp-mlops-section');
    this.title.label = label;
  }

  /** Load the section's data again. */
  refresh(): void {
    this.tick += 1;
    this.update();
  }
}
