import React from 'react';

import type { IDatasetVersion } from './datasets';
import { SplitBar, SplitMovesLine } from './datasets_changes';

export function fmtBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

/** The facts of the version chosen: files, images, annotations, split sizes and moves. */
export function Summary(props: { v: IDatasetVersion }) {
  const s = props.v.summary;
  const rows: [string, React.ReactNode][] = [
    ['Version', `${props.v.version}${props.v.tags.length ? ` (${props.v.tags.join(', ')})` : ''}`],
    ['Message', `${props.v.message || '—'} · ${props.v.author}`],
    ['Files', `${s.files} · ${fmtBytes(s.bytes)}`],
    [
      'Images',
      `${s.images} · ${Object.entries(s.image_sizes)
        .map(([k, n]) => `${k}×${n}`)
        .join(', ')}`
    ],
    ['Annotations', `${s.objects} objects on ${s.annotated_images} images`],
    ['Split', <SplitBar splits={s.splits} />],
    [
      'Split moves',
      s.split_moves ? <SplitMovesLine parent={s.parent} moves={s.split_moves} /> : null
    ]
  ];
  return (
    <div className="jp-mlops-ds-summary" data-testid="dataset-summary">
      {rows
        .filter(([, v]) => v !== null)
        .map(([k, v]) => (
          <div className="jp-mlops-row" key={k}>
            <span className="jp-mlops-label">{k}</span>
            <span className="jp-mlops-value">{v}</span>
          </div>
        ))}
    </div>
  );
}
