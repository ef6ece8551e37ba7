import { ReactWidget, ToolbarButtonComponent, refreshIcon } from '@jupyterlab/ui-components';
import React from 'react';

/**
 * One section of the MLOps sidebar. `refresh()` bumps `tick`, which the section passes to its
 * view as a prop: the view reloads on a new tick without the widget holding any data itself.
 * `view` renders the section; a section with more state than the tick overrides `render`.
 */
export class SidebarSection extends ReactWidget {
  protected tick = 0;

  constructor(
    label: string,
    private _view?: (tick: number) => JSX.Element
  ) {
    super();
    this.addClass('jp-mlops-section');
    this.title.label = label;
  }

  /** Load the section's data again. */
  refresh(): void {
    this.tick += 1;
    this.update();
  }

  render(): JSX.Element | null {
    return this._view ? this._view(this.tick) : null;
  }
}

/** The reload button at the top of a section's view. */
export function SectionReload(props: { tooltip: string; onClick: () => void }): JSX.Element {
  return (
    <div className="jp-mlops-section-tools">
      <ToolbarButtonComponent icon={refreshIcon} tooltip={props.tooltip} onClick={props.onClick} />
    </div>
  );
}
