import React from 'react';

import { ErrorLine } from '../components/errorLine';
import { useRemote } from '../components/hooks';
import { SidebarSection } from '../components/sidebarSection';
import { listProjects } from '../api/projects';

/**
 * The projects I belong to, each linking to its page (members, milestones, progress).
 */
export function ProjectsView(props: { refreshSignal?: number }): JSX.Element {
  const { data, error } = useRemote(listProjects, [props.refreshSignal]);

  if (error) {
    return <ErrorLine error={error} />;
  }
  if (!data) {
    return <div className="jp-mlops-muted">Loading projects…</div>;
  }
  return (
    <ul className="jp-mlops-projects" aria-label="My projects">
      {data.projects.map(p => (
        <li key={p.name} className="jp-mlops-project" data-testid={`project-${p.name}`}>
          <a
            href={`${data.pages_url}/${encodeURIComponent(p.name)}`}
            target="_blank"
            rel="noopener noreferrer"
            className="jp-mlops-link"
          >
            {p.name}
          </a>
          {p.can_manage && <span className="jp-mlops-badge">manager</span>}
          {p.gpu_quota !== null && (
            <span className="jp-mlops-muted"> · {p.gpu_quota} GPU quota</span>
          )}
          {p.description && <div className="jp-mlops-muted">{p.description}</div>}
        </li>
      ))}
    </ul>
  );
}

/** The projects section of the MLOps sidebar. */
export class ProjectsPanel extends SidebarSection {
  constructor() {
    super('Projects', tick => <ProjectsView refreshSignal={tick} />);
  }
}
