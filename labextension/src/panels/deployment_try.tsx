/**
 * "Try it" of a deployment: send an image, JSON or CSV file to its endpoint through the
 * server extension and show the answer (boxes drawn over an image for the cell detector).
 */
import React, { useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { predict } from '../api/deployments';

/** Boxes of a detection answer, if it is one: `[{boxes: [[x0, y0, x1, y1], ...]}]`. */
function boxesOf(result: any): number[][] {
  const first = Array.isArray(result?.predictions) ? result.predictions[0] : null;
  if (first && Array.isArray(first.boxes)) {
    return first.boxes.filter((b: any) => Array.isArray(b) && b.length === 4);
  }
  if (Array.isArray(first) && first.every((o: any) => Array.isArray(o?.box))) {
    return first.map((o: any) => o.box);
  }
  return [];
}

export function TryIt(props: { name: string }): JSX.Element {
  const [result, setResult] = useState<any>(null);
  const [error, setError] = useState<string | null>(null);
  const [image, setImage] = useState<{ url: string; w: number; h: number } | null>(null);
  const [busy, setBusy] = useState(false);

  const onFile = async (file: File | undefined) => {
    if (!file) {
      return;
    }
    setError(null);
    setResult(null);
    setImage(null);
    const isImage = file.type.startsWith('image/');
    const type = isImage ? file.type : file.name.endsWith('.csv') ? 'text/csv' : 'application/json';
    if (isImage) {
      const url = URL.createObjectURL(file);
      const img = new Image();
      img.onload = () => setImage({ url, w: img.naturalWidth, h: img.naturalHeight });
      img.src = url;
    }
    setBusy(true);
    try {
      setResult(await predict(props.name, file, type));
    } catch (e: any) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };

  const boxes = boxesOf(result);
  return (
    <div className="jp-mlops-tryit">
      <label className="jp-mlops-label">
        Try it: upload an image, JSON or CSV{' '}
        <input
          type="file"
          className="jp-mod-styled"
          aria-label={`Try ${props.name} with a file`}
          accept="image/*,.json,.csv,application/json,text/csv"
          onChange={e => void onFile(e.target.files?.[0])}
        />
      </label>
      {busy && <div className="jp-mlops-muted">Predicting…</div>}
      <ErrorLine error={error} />
      {image && (
        <div className="jp-mlops-tryit-image" data-testid="tryit-image">
          <img src={image.url} alt="uploaded input" />
          <svg viewBox={`0 0 ${image.w} ${image.h}`} preserveAspectRatio="none">
            {boxes.map((b, i) => (
              <rect
                key={i}
                className="jp-mlops-box"
                x={b[0]}
                y={b[1]}
                width={b[2] - b[0]}
                height={b[3] - b[1]}
              />
            ))}
          </svg>
        </div>
      )}
      {result && (
        <>
          {image && (
            <div className="jp-mlops-muted" data-testid="tryit-boxes">
              {boxes.length} box(es) detected
            </div>
          )}
          <pre className="jp-mlops-pre" data-testid="tryit-result">
            {JSON.stringify(result).slice(0, 4000)}
          </pre>
        </>
      )}
    </div>
  );
}
