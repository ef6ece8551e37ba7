import React from 'react';

import { ErrorLine } from '../components/errorLine';
import { usePolledList } from '../components/hooks';
import { SidebarSection } from '../components/sidebarSection';
import { IProject, IProjects } from '../api/projects';
import { IMlopsList } from '../tokens';

/**
 * The projects I belong to, each linking to its page (members, milestones, progress).
 */
export function ProjectsView(props: {
  projects: IMlopsList<IProject, IProjects>;
  refreshSignal?: number;
}): JSX.Element {
  const { answer: data, error } = usePolledList(props.projects, props.refreshSignal);

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
  constructor(projects: IMlopsList<IProject, IProjects>) {
    super('Projects', tick => <ProjectsView projects={projects} refreshSignal={tick} />);
  }
}
