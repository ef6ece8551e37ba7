/** A dataset file as a small square: a lazy thumbnail for images, its kind for other files. */
import React from 'react';

import { objectUrl } from '../api/datasets';
import type { IDatasetFile } from '../panels/datasets';

/** The server's PNG rendering of an image object: `thumbnail` (`size` px) or `preview`. */
export function objectImageUrl(hash: string, what: 'thumbnail' | 'preview', size = 128): string {
  return objectUrl(hash, what, what === 'thumbnail' ? size : undefined);
}

export function Thumb(props: {
  file: IDatasetFile;
  onOpen?: (f: IDatasetFile) => void;
  badge?: string;
}): JSX.Element {
  const { file } = props;
  return (
    <figure
      className="jp-mlops-ds-thumb"
      title={`${file.path}${file.objects !== undefined ? ` · ${file.objects} objects` : ''}`}
      onClick={() => props.onOpen?.(file)}
      data-path={file.path}
    >
      {file.kind === 'image' ? (
        <img src={objectImageUrl(file.hash, 'thumbnail')} loading="lazy" alt={file.path} />
      ) : (
        <div className="jp-mlops-ds-file">{file.kind}</div>
      )}
      <figcaption>
        {props.badge && <span className={`jp-mlops-ds-badge ${props.badge}`}>{props.badge}</span>}
        {file.path}
      </figcaption>
    </figure>
  );
}
