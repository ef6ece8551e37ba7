"""Image facts and browser-viewable renderings (16-bit microscopy TIFFs included).

Browsers cannot show 16-bit TIFFs, and a raw 16-bit frame looks black when cut to 8 bits, so
every rendering stretches intensities between robust percentiles first.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InvalidInput

Image.MAX_IMAGE_PIXELS = 20_000 * 20_000  # refuse decompression bombs beyond 400 MP


def image_info(path: str | Path) -> dict:
    """Width, height, channels and sample type from the header only (no pixel decoding)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            mode = im.mode
    except Exception:  # not an image after all: stored as a plain file
        return {}
    channels = {"L": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "I": 1, "F": 1, "1": 1,
                "LA": 2, "RGB": 3, "RGBA": 4, "P": 1}.get(mode, len(mode))
    dtype = {"I;16": "uint16", "I;16B": "uint16", "I;16L": "uint16", "I": "int32",
             "F": "float32", "1": "bool"}.get(mode, "uint8")
    return {"width": w, "height": h, "channels": channels, "dtype": dtype}


def _to_array(data: bytes) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.mode in ("P", "1", "LA", "RGBA", "CMYK", "YCbCr"):
                im = im.convert("RGB")
            return np.asarray(im)
    except Exception:
        pass
    try:  # TIFF flavours Pillow does not decode (multi-sample 16-bit, ...)
        import tifffile

        return tifffile.imread(io.BytesIO(data))
    except Exception as e:
        raise InvalidInput(f"not a readable image: {e}") from None


def _stretch(arr: np.ndarray) -> np.ndarray:
    """8-bit rendering: intensities between the 0.5th and 99.8th percentile of a subsample."""
    if arr.ndim == 3 and arr.shape[2] > 4:  # a stack: show the first plane
        arr = arr[..., 0]
    if arr.ndim > 3:
        arr = arr.reshape(arr.shape[-3:])[..., 0]
    if arr.dtype == np.uint8:
        return arr
    sample = arr[:: max(1, arr.shape[0] // 256), :: max(1, arr.shape[1] // 256)]
    lo, hi = np.percentile(sample, (0.5, 99.8))
    if hi <= lo:
        hi = lo + 1
    out = (arr.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.clip(out, 0, 255).astype(np.uint8)


def render_png(data: bytes, max_side: int) -> bytes:
    """A PNG of the image no larger than ``max_side`` pixels on its longer side."""
    arr = _to_array(data)
    if arr.ndim == 2 or arr.ndim == 3:
        # cheap decimation before the stretch and the resize keeps big frames fast
        step = max(1, min(arr.shape[0], arr.shape[1]) // (max_side * 2))
        arr = arr[::step, ::step]
    im = Image.fromarray(_stretch(arr))
    im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    im.save(out, format="PNG", optimize=False, compress_level=1)
    return out.getvalue()


def mask_instances(data: bytes) -> int:
    """How many instances a label mask holds (distinct non-zero values)."""
    arr = _to_array(data)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return int(np.count_nonzero(np.unique(arr)))


def mask_boxes(data: bytes) -> list[dict]:
    """Boxes of the instances of a label mask (each non-zero value is one object)."""
    arr = _to_array(data)
    if arr.ndim == 3:
        arr = arr[..., 0]
    boxes = []
    for label in np.unique(arr):
        if label == 0:
            continue
        ys, xs = np.nonzero(arr == label)
        boxes.append({"x": int(xs.min()), "y": int(ys.min()), "w": int(xs.max() - xs.min() + 1),
                      "h": int(ys.max() - ys.min() + 1), "label": f"instance {int(label)}"})
    return boxes
