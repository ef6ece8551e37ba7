import React from 'react';

import { ErrorLine } from '../components/errorLine';
import { useRemote } from '../components/hooks';
import { SidebarSection } from '../components/sidebarSection';
import { getStatus, IComponentStatus, IGpu } from '../api/status';
import { GpuUsageView } from './gpu_usage';

/** `none`: nothing to check and nothing wrong (a CPU profile holds no GPU). */
type Health = 'ok' | 'bad' | 'none';

function Dot(props: { health: Health }): JSX.Element {
  return <span className={`jp-mlops-dot jp-mlops-${props.health}`} aria-hidden="true" />;
}

const health = (ok: boolean): Health => (ok ? 'ok' : 'bad');

function Component(props: {
  label: string;
  status: IComponentStatus;
  children?: React.ReactNode;
}): JSX.Element {
  const { label, status } = props;
  return (
    <div className="jp-mlops-row" data-testid={`status-${label.toLowerCase().replace(' ', '-')}`}>
      <Dot health={health(status.reachable)} />
      <span className="jp-mlops-label">{label}</span>
      <span className="jp-mlops-value">
        {status.reachable ? `reachable · v${status.version}` : `unreachable: ${status.error}`}
        {props.children}
      </span>
    </div>
  );
}

/**
 * One held GPU: its name, memory and utilisation, or plainly no utilisation data where the
 * driver does not see it (a simulated GPU) or does not measure it.
 */
function describeGpu(g: IGpu): string {
  const memory = g.memory_total_mb > 0 ? ` (${Math.round(g.memory_total_mb / 1024)} GB)` : '';
  const use =
    g.utilization_pct === null || g.utilization_pct === undefined
      ? 'no utilisation data'
      : `${g.utilization_pct}% busy`;
  return `${g.name}${memory} · ${use}`;
}

/**
 * Live checks of the platform: who I am, MLflow, the control plane, my GPUs, the shared dataset.
 */
export function StatusView(props: { refreshSignal?: number }): JSX.Element {
  const { data: status, error, loading } = useRemote(getStatus, [props.refreshSignal]);

  if (error && !status) {
    return <ErrorLine error={error} />;
  }
  if (!status) {
    return <div className="jp-mlops-muted">Checking the platform…</div>;
  }
  const gpuOk = status.gpus.devices.length > 0;
  // red only where GPUs were asked for (or nothing is known) and none can be seen
  const gpuHealth: Health = gpuOk ? 'ok' : status.gpus.requested === false ? 'none' : 'bad';
  return (
    <div className="jp-mlops-status" aria-busy={loading}>
      <ErrorLine error={error} />
      <div className="jp-mlops-row" data-testid="status-user">
        <span className="jp-mlops-label">Signed in</span>
        <span className="jp-mlops-value">
          <strong>{status.user.name}</strong> · {status.user.role}
        </span>
      </div>
      <Component label="MLflow" status={status.mlflow}>
        <br />
        <a
          href={status.mlflow.ui_url}
          target="_blank"
          rel="noopener noreferrer"
          className="jp-mlops-link"
        >
          Open MLflow UI ↗
        </a>
      </Component>
      <Component label="Control plane" status={status.control_plane} />
      <div className="jp-mlops-row" data-testid="status-gpus" data-health={gpuHealth}>
        <Dot health={gpuHealth} />
        <span className="jp-mlops-label">GPUs</span>
        <span className="jp-mlops-value" title={status.gpus.detail}>
          {gpuOk
            ? status.gpus.devices.map(g => `${g.index}: ${describeGpu(g)}`).join(', ')
            : status.gpus.message}
        </span>
      </div>
      <GpuUsageView refreshSignal={props.refreshSignal} />
      <div className="jp-mlops-row" data-testid="status-dataset">
        <Dot health={health(status.dataset.exists)} />
        <span className="jp-mlops-label">Shared dataset</span>
        <span className="jp-mlops-value">
          <code>{status.dataset.path || 'not configured'}</code>
          {status.dataset.exists && (status.dataset.writable ? ' (writable!)' : ' (read-only)')}
        </span>
      </div>
    </div>
  );
}

/** The status section of the MLOps sidebar. */
export class StatusPanel extends SidebarSection {
  constructor() {
    super('Platform', tick => <StatusView refreshSignal={tick} />);
  }
}
