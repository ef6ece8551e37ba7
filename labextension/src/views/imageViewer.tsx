/**
 * A dataset version's images, one at a time, in a main-area tab: the image at its own aspect
 * ratio with its annotation boxes drawn over it in image pixels (so they stay on the same
 * pixels at every zoom), zoom (wheel, +/-, Fit, 100%), pan (drag), and the keyboard: Escape
 * closes, Left/Right or k/j step through the version's images.
 *
 * One tab per dataset version: opening another image of the same version shows it in that tab.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Button, ReactWidget } from '@jupyterlab/ui-components';
import React, { useEffect, useRef, useState } from 'react';

import { ErrorLine } from '../components/errorLine';
import { openWidgetInMainArea } from '../components/mainArea';
import type { IDatasetFile } from '../panels/datasets';
import { fmtBytes } from '../panels/datasets_summary';
import { getAnnotations, IAnnotationBox, listVersionFiles } from '../api/datasets';
import { MlopsError } from '../api/request';
import { objectImageUrl } from './thumb';
import { useZoomPan, ZOOM_STEP } from './zoomPan';

/** The images stepped through: those of one version, of one split when `split` is set. */
export interface IImageList {
  dataset: string;
  version: string;
  split: string;
}

type IBox = IAnnotationBox;

/** Scales from which image pixels are drawn as squares, not blurred. */
const PIXELATED_FROM = 3;

const count = (n: number) => n.toLocaleString('en-US');

function listPage(list: IImageList, offset: number, limit: number) {
  return listVersionFiles(list.dataset, list.version, {
    offset,
    limit,
    kind: 'image',
    split: list.split
  });
}

/** The annotation boxes of one image (none while they load). */
function useBoxes(list: IImageList, path: string): { boxes: IBox[] | null; error: string | null } {
  const [state, setState] = useState<{ boxes: IBox[] | null; error: string | null }>({
    boxes: null,
    error: null
  });
  useEffect(() => {
    let current = true; // a late answer for the previous image must not draw on this one
    setState({ boxes: null, error: null });
    getAnnotations(list.dataset, list.version, path)
      .then(r => current && setState({ boxes: r.boxes, error: null }))
      .catch((e: MlopsError) => current && setState({ boxes: null, error: e.message }));
    return () => {
      current = false;
    };
  }, [list.dataset, list.version, path]);
  return state;
}

/** What the tab shows: one image of `list`, the `index`-th of `total`. */
export interface IImageViewerProps {
  list: IImageList;
  file: IDatasetFile;
  index: number;
  total: number;
  loading: boolean;
  error: string | null;
  onNavigate: (index: number) => void;
  onClose: () => void;
}

export function ImageViewer(props: IImageViewerProps): JSX.Element {
  const { file, index, total, list } = props;
  const w = file.width || 1;
  const h = file.height || 1;
  const { boxes, error } = useBoxes(list, file.path);
  const { stage, view, zoom, fit, actualSize } = useZoomPan(w, h);
  const root = useRef<HTMLDivElement>(null);
  useEffect(() => root.current?.focus(), []);

  const step = (d: number) => {
    const next = index + d;
    if (next >= 0 && next < total) {
      props.onNavigate(next);
    }
  };
  const onKeyDown = (e: React.KeyboardEvent) => {
    if (e.altKey || e.ctrlKey || e.metaKey) {
      return;
    }
    const act: { [key: string]: () => void } = {
      Escape: props.onClose,
      ArrowLeft: () => step(-1),
      k: () => step(-1),
      ArrowRight: () => step(1),
      j: () => step(1),
      '+': () => zoom(ZOOM_STEP),
      '=': () => zoom(ZOOM_STEP),
      '-': () => zoom(1 / ZOOM_STEP),
      '0': fit,
      '1': actualSize
    };
    const fn = act[e.key];
    if (fn) {
      e.preventDefault();
      e.stopPropagation();
      fn();
    }
  };

  return (
    <div
      ref={root}
      className="jp-mlops-iv"
      tabIndex={0}
      onKeyDown={onKeyDown}
      role="region"
      aria-label={`Image ${file.path}`}
      data-index={index}
    >
      <div className="jp-mlops-iv-bar">
        <Button
          minimal
          small
          disabled={index <= 0}
          onClick={() => step(-1)}
          aria-label="Previous image"
          title="Previous image (Left, k)"
        >
          ‹
        </Button>
        <span className="jp-mlops-iv-position" data-testid="image-position">
          {count(index + 1)} / {count(total)}
        </span>
        <Button
          minimal
          small
          disabled={index + 1 >= total}
          onClick={() => step(1)}
          aria-label="Next image"
          title="Next image (Right, j)"
        >
          ›
        </Button>
        <strong className="jp-mlops-iv-name" data-testid="image-name">
          {file.path}
        </strong>
        <span className="jp-mlops-muted jp-mlops-iv-facts">
          {w}×{h} · {file.dtype} · {fmtBytes(file.size)}
          {file.split ? ` · ${file.split}` : ''}
          {boxes ? ` · ${boxes.length} annotated objects` : ''}
          {file.annotation ? ` (${file.annotation})` : ''}
          {props.loading ? ' · loading…' : ''}
        </span>
        <span className="jp-mlops-iv-zoom" role="group" aria-label="Zoom">
          <Button
            minimal
            small
            onClick={() => zoom(1 / ZOOM_STEP)}
            aria-label="Zoom out"
            title="Zoom out (-)"
          >
            −
          </Button>
          <span className="jp-mlops-iv-scale" data-testid="image-zoom">
            {Math.round(view.scale * 100)}%
          </span>
          <Button
            minimal
            small
            onClick={() => zoom(ZOOM_STEP)}
            aria-label="Zoom in"
            title="Zoom in (+)"
          >
            +
          </Button>
          <Button
            minimal
            small
            className={view.fit ? 'jp-mod-active' : ''}
            onClick={fit}
            title="Fit the image to the tab (0)"
          >
            Fit
          </Button>
          <Button minimal small onClick={actualSize} title="One screen pixel per image pixel (1)">
            100%
          </Button>
        </span>
      </div>
      <ErrorLine error={props.error ?? error} />
      <div ref={stage} className="jp-mlops-iv-stage">
        <div
          className="jp-mlops-iv-canvas jp-mlops-overlay"
          style={{
            width: w * view.scale,
            height: h * view.scale,
            transform: `translate(${view.tx}px, ${view.ty}px)`,
            imageRendering: view.scale >= PIXELATED_FROM ? 'pixelated' : 'auto'
          }}
        >
          <img src={objectImageUrl(file.hash, 'preview')} alt={file.path} draggable={false} />
          <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" data-testid="annotations">
            {(boxes || []).map((b, i) => (
              <rect key={i} x={b.x} y={b.y} width={b.w} height={b.h}>
                <title>{b.label}</title>
              </rect>
            ))}
          </svg>
        </div>
      </div>
    </div>
  );
}

/** The tab's content: which image of which list it shows, and fetching the next one. */
export class ImageViewerWidget extends ReactWidget {
  private list: IImageList;
  private index = 0;
  private total = 0;
  private file: IDatasetFile | null = null;
  private loading = false;
  private error: string | null = null;
  private request = 0;

  constructor(list: IImageList) {
    super();
    this.list = list;
    this.addClass('jp-mlops-iv-widget');
  }

  /** Show the `index`-th image of `list`; `file` and `total` when the caller has them. */
  showImage(list: IImageList, index: number, file?: IDatasetFile, total?: number): void {
    this.list = list;
    this.index = index;
    if (total !== undefined) {
      this.total = total;
    }
    this.error = null;
    if (file) {
      this.request++; // an answer still on its way is for an image no longer asked for
      this.file = file;
      this.loading = false;
      this.retitle();
    } else {
      void this.load(index);
    }
    this.update();
  }

  private async load(index: number): Promise<void> {
    const request = ++this.request;
    this.loading = true;
    try {
      const r = await listPage(this.list, index, 1);
      if (request !== this.request) {
        return;
      }
      this.total = r.total;
      if (r.files[0]) {
        this.file = r.files[0];
      } else {
        this.error = `no image ${index + 1} in ${this.list.dataset} ${this.list.version}`;
      }
    } catch (e: any) {
      if (request !== this.request) {
        return;
      }
      this.error = e.message;
    }
    this.loading = false;
    this.retitle();
    this.update();
  }

  private retitle(): void {
    const name = this.file?.path ?? '';
    this.title.label = `${name} · ${this.list.dataset} ${this.list.version}`;
    this.title.caption = `${this.list.dataset} ${this.list.version}: image ${this.index + 1} of ${this.total}`;
  }

  protected onActivateRequest(): void {
    this.node.querySelector<HTMLElement>('.jp-mlops-iv')?.focus();
  }

  render(): JSX.Element {
    if (!this.file) {
      return (
        <div className="jp-mlops-iv">
          <ErrorLine error={this.error} />
          {!this.error && <div className="jp-mlops-muted">Loading…</div>}
        </div>
      );
    }
    return (
      <ImageViewer
        list={this.list}
        file={this.file}
        index={this.index}
        total={this.total}
        loading={this.loading}
        error={this.error}
        onNavigate={i => this.showImage(this.list, i)}
        onClose={() => (this.parent ?? this).close()}
      />
    );
  }
}

/**
 * Show `file`, the `index`-th of `total` images of `list`, in the tab of its dataset version
 * (opened if there is none yet).
 */
export function openImageViewer(
  app: JupyterFrontEnd,
  list: IImageList,
  index: number,
  file: IDatasetFile,
  total: number
): void {
  const viewer = openWidgetInMainArea(
    app,
    `jp-mlops-images-${list.dataset}-${list.version}`,
    () => new ImageViewerWidget(list)
  );
  viewer.showImage(list, index, file, total);
}
