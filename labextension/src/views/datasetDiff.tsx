/**
 * What changed between two versions of a dataset, in a main-area tab (one per dataset and pair
 * of versions): files added, removed and changed as before/after thumbnails, split moves, and
 * the annotated objects that changed, drawn over each image.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import React, { useEffect, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { openInMainArea } from '../components/mainArea';
import { ObjectChanges, SplitMovesLine } from '../panels/datasets_changes';
import { diffVersions, IDatasetDiff } from '../api/datasets';
import { MlopsError } from '../api/request';
import { Thumb } from './thumb';

type IDiff = IDatasetDiff;

export function DatasetDiff(props: { dataset: string; from: string; to: string }): JSX.Element {
  const { dataset, from, to } = props;
  const [diff, setDiff] = useState<IDiff | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    diffVersions(dataset, from, to)
      .then(setDiff)
      .catch((e: MlopsError) => setError(e.message));
  }, [dataset, from, to]);
  return (
    <div className="jp-mlops-datasets jp-mlops-ds-diff" data-testid="dataset-diff">
      <h2>
        {dataset}: {from} → {to}
      </h2>
      <ErrorLine error={error} />
      {!diff && !error && <div className="jp-mlops-muted">Comparing…</div>}
      {diff && (
        <div>
          <p className="jp-mlops-muted">
            {diff.from} → {diff.to}: {diff.added.length} added, {diff.removed.length} removed,{' '}
            {diff.changed.length} changed, {diff.unchanged} unchanged
            {diff.split_moves && (
              <>
                {' · split: '}
                <SplitMovesLine moves={diff.split_moves} />
              </>
            )}
          </p>
          <ObjectChanges objects={diff.objects} />
          <div className="jp-mlops-ds-grid">
            {diff.added.map(f => (
              <Thumb key={'a' + f.path} file={f} badge="added" />
            ))}
            {diff.removed.map(f => (
              <Thumb key={'r' + f.path} file={f} badge="removed" />
            ))}
            {diff.changed.map(c => (
              <React.Fragment key={'c' + c.path}>
                <Thumb file={c.old} badge="before" />
                <Thumb file={c.new} badge="after" />
              </React.Fragment>
            ))}
          </div>
        </div>
      )}
    </div>
  );
}

/** Open the diff of `dataset` from `from` to `to`, or bring its tab forward. */
export function openDatasetDiff(
  app: JupyterFrontEnd,
  dataset: string,
  from: string,
  to: string
): void {
  openInMainArea(
    app,
    `jp-mlops-diff-${dataset}-${from}-${to}`,
    `${dataset}: ${from} → ${to}`,
    <DatasetDiff dataset={dataset} from={from} to={to} />
  );
}
