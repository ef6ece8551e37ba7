import { describe, expect, it } from 'vitest';

import { centredView, fitView, MAX_SCALE, MIN_SCALE, zoomAt } from '../src/views/zoomPan';

/** Where image pixel (px, py) lands in the stage under view `v`. */
const onStage = (v: { scale: number; tx: number; ty: number }, px: number, py: number) => [
  v.tx + px * v.scale,
  v.ty + py * v.scale
];

describe('image zoom and pan', () => {
  it('fits a wide image to the stage width, centred vertically, keeping its shape', () => {
    const v = fitView(1000, 600, 160, 96);
    expect(v.scale).toBeCloseTo(6.25);
    expect(v.tx).toBeCloseTo(0);
    expect(v.ty).toBeCloseTo((600 - 96 * 6.25) / 2);
    expect(v.fit).toBe(true);
  });

  it('fits a tall image to the stage height', () => {
    const v = fitView(1000, 600, 100, 300);
    expect(v.scale).toBeCloseTo(2);
    expect(v.tx).toBeCloseTo(400);
    expect(v.ty).toBeCloseTo(0);
  });

  it('shows 100% centred', () => {
    expect(centredView(800, 600, 160, 96, 1)).toEqual({ scale: 1, tx: 320, ty: 252, fit: false });
  });

  it('keeps the image pixel under the pointer where it is when zooming', () => {
    const v = fitView(1000, 600, 160, 96);
    const [cx, cy] = onStage(v, 40, 30); // the pointer on image pixel (40, 30)
    const zoomed = zoomAt(v, 1.25, cx, cy);
    expect(zoomed.scale).toBeCloseTo(v.scale * 1.25);
    const [x, y] = onStage(zoomed, 40, 30);
    expect(x).toBeCloseTo(cx);
    expect(y).toBeCloseTo(cy);
    expect(zoomed.fit).toBe(false);
  });

  it('stops zooming at its limits', () => {
    let v = centredView(100, 100, 10, 10, 1);
    for (let i = 0; i < 100; i++) {
      v = zoomAt(v, 2, 50, 50);
    }
    expect(v.scale).toBe(MAX_SCALE);
    for (let i = 0; i < 200; i++) {
      v = zoomAt(v, 0.5, 50, 50);
    }
    expect(v.scale).toBe(MIN_SCALE);
  });
});
