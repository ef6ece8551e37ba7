import React from 'react';

/**
 * A request's error message, or nothing. Every panel shows failures the same way (the
 * server's own message, announced to screen readers), so the markup lives here once.
 */
export function ErrorLine(props: { error: string | null | undefined }): JSX.Element | null {
  return props.error ? (
    <div className="jp-mlops-error" role="alert">
      {props.error}
    </div>
  ) : null;
}
