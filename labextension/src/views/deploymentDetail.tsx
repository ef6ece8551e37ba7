/**
 * One deployment in a main-area tab of its own (one tab per deployment): kept current at every
 * poll of the shared poller, so its status, server health and versions stay live while it is
 * open. The Deployments section of the sidebar lists deployments and opens this tab.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import React from 'react';

import { getDeployment, IDeployment } from '../api/deployments';
import { ErrorLine } from '../components/errorLine';
import { useRemote } from '../components/hooks';
import { openInMainArea } from '../components/mainArea';

/** What the tab draws of a deployment; `onChange` after an action that changed it. */
export type RenderDeployment = (dep: IDeployment, onChange: () => void) => JSX.Element;

function DeploymentDetail(props: {
  name: string;
  render: RenderDeployment;
  onChanged: () => void;
}): JSX.Element {
  const { data: dep, error, reload } = useRemote(() => getDeployment(props.name), [props.name]);
  const onChange = () => {
    void reload();
    props.onChanged();
  };
  return (
    <div className="jp-mlops-explorer jp-mlops-deployment-tab" data-deployment={props.name}>
      <ErrorLine error={error} />
      {!dep && !error && <div className="jp-mlops-muted">Loading {props.name}…</div>}
      {dep && props.render(dep, onChange)}
    </div>
  );
}

/**
 * Open deployment `name` in its tab, or bring the tab forward; `onChanged` tells the list
 * that an action in the tab changed it (e.g. undeployed).
 */
export function openDeploymentDetail(
  app: JupyterFrontEnd,
  name: string,
  render: RenderDeployment,
  onChanged: () => void
): void {
  openInMainArea(
    app,
    `jp-mlops-deployment-${name}`,
    `Deployment: ${name}`,
    <DeploymentDetail name={name} render={render} onChanged={onChanged} />
  );
}
