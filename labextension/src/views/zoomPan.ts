/**
 * Zoom and pan of an image of `width` x `height` pixels in a stage element: the pure arithmetic
 * (`fitView`, `zoomAt`) apart from the hook that binds it to wheel, drag and resize events.
 */
import { useCallback, useEffect, useRef, useState } from 'react';

/** CSS pixels per image pixel, and where the image's top-left corner sits in the stage. */
export interface IView {
  scale: number;
  tx: number;
  ty: number;
  /** Follow the stage's size (the "Fit" mode) until the user zooms or pans. */
  fit: boolean;
}

export const MIN_SCALE = 0.05;
export const MAX_SCALE = 64;
/** One wheel notch or one +/- press. */
export const ZOOM_STEP = 1.25;

const clamp = (s: number) => Math.min(MAX_SCALE, Math.max(MIN_SCALE, s));

/** The whole image, centred, as large as the stage allows (small images are enlarged too). */
export function fitView(sw: number, sh: number, w: number, h: number): IView {
  const scale = clamp(Math.min(sw / w, sh / h) || 1);
  return { scale, tx: (sw - w * scale) / 2, ty: (sh - h * scale) / 2, fit: true };
}

/** The image at `scale`, centred in the stage. */
export function centredView(sw: number, sh: number, w: number, h: number, scale: number): IView {
  return { scale, tx: (sw - w * scale) / 2, ty: (sh - h * scale) / 2, fit: false };
}

/** Zoom by `factor` keeping the image pixel under the stage point (cx, cy) where it is. */
export function zoomAt(v: IView, factor: number, cx: number, cy: number): IView {
  const scale = clamp(v.scale * factor);
  const k = scale / v.scale;
  return { scale, tx: cx - (cx - v.tx) * k, ty: cy - (cy - v.ty) * k, fit: false };
}

/** The stage's size in CSS pixels (the image's own before the stage is laid out). */
function stageSize(el: HTMLElement | null, w: number, h: number): { sw: number; sh: number } {
  return el ? { sw: el.clientWidth, sh: el.clientHeight } : { sw: w, sh: h };
}

/**
 * The view of an image in the element `stage` is put on: fitted at first and on every resize
 * while in fit mode; the wheel zooms around the pointer, dragging pans.
 */
export function useZoomPan(
  w: number,
  h: number
): {
  stage: React.RefObject<HTMLDivElement>;
  view: IView;
  zoom: (factor: number) => void;
  fit: () => void;
  actualSize: () => void;
} {
  const stage = useRef<HTMLDivElement>(null);
  const [view, setView] = useState<IView>({ scale: 1, tx: 0, ty: 0, fit: true });
  const fit = useCallback(() => {
    const { sw, sh } = stageSize(stage.current, w, h);
    setView(fitView(sw, sh, w, h));
  }, [w, h]);
  const actualSize = useCallback(() => {
    const { sw, sh } = stageSize(stage.current, w, h);
    setView(centredView(sw, sh, w, h, 1));
  }, [w, h]);
  const zoom = useCallback(
    (factor: number) => {
      const { sw, sh } = stageSize(stage.current, w, h);
      setView(v => zoomAt(v, factor, sw / 2, sh / 2));
    },
    [w, h]
  );

  // a new image (other dimensions) starts fitted; so does every resize in fit mode
  useEffect(fit, [fit]);
  useEffect(() => {
    const el = stage.current;
    if (!el || typeof ResizeObserver === 'undefined') {
      return;
    }
    const obs = new ResizeObserver(() => {
      if (el.clientWidth > 0 && el.clientHeight > 0) {
        setView(v => (v.fit ? fitView(el.clientWidth, el.clientHeight, w, h) : v));
      }
    });
    obs.observe(el);
    return () => obs.disconnect();
  }, [w, h]);

  // React's wheel listener is passive: the page would scroll too
  useEffect(() => {
    const el = stage.current;
    if (!el) {
      return;
    }
    const onWheel = (e: WheelEvent) => {
      e.preventDefault();
      const r = el.getBoundingClientRect();
      const factor = e.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP;
      setView(v => zoomAt(v, factor, e.clientX - r.left, e.clientY - r.top));
    };
    let drag: { x: number; y: number; id: number } | null = null;
    const onDown = (e: PointerEvent) => {
      if (e.button !== 0) {
        return;
      }
      drag = { x: e.clientX, y: e.clientY, id: e.pointerId };
      el.setPointerCapture(e.pointerId);
      el.classList.add('jp-mod-dragging');
    };
    const onMove = (e: PointerEvent) => {
      if (!drag || e.pointerId !== drag.id) {
        return;
      }
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      drag = { ...drag, x: e.clientX, y: e.clientY };
      setView(v => ({ ...v, tx: v.tx + dx, ty: v.ty + dy, fit: false }));
    };
    const onUp = (e: PointerEvent) => {
      if (drag && e.pointerId === drag.id) {
        drag = null;
        el.classList.remove('jp-mod-dragging');
      }
    };
    el.addEventListener('wheel', onWheel, { passive: false });
    el.addEventListener('pointerdown', onDown);
    el.addEventListener('pointermove', onMove);
    el.addEventListener('pointerup', onUp);
    el.addEventListener('pointercancel', onUp);
    return () => {
      el.removeEventListener('wheel', onWheel);
      el.removeEventListener('pointerdown', onDown);
      el.removeEventListener('pointermove', onMove);
      el.removeEventListener('pointerup', onUp);
      el.removeEventListener('pointercancel', onUp);
    };
  }, []);
  return { stage, view, zoom, fit, actualSize };
}
