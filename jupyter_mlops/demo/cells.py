"""A seeded synthetic microscopy dataset: nuclei on a noisy background, with ground truth.

The same ``seed`` always gives the same bytes, so tests, benchmarks and the reference project
can share one generator::

    from jupyter_mlops.demo import cells
    coco = cells.generate("data/cells", n_images=50, seed=7)         # 16-bit TIFF + COCO JSON
    cells.generate("data/png", n_images=10, fmt="png", masks=True)  # PNG + label masks

    python -m jupyter_mlops.demo.cells data/cells --n 50 --seed 7

Each image ``img_0000.tif`` holds 16-bit fluorescence-like nuclei (bright ellipses with a soft
edge and texture) on a dim, noisy background. ``annotations.json`` is COCO with one ``nucleus``
box (``[x, y, w, h]``, pixels) per nucleus; ``masks=True`` also writes one label mask per image
(``masks/img_0000.png``, value k = nucleus k). :func:`nuclei` returns the boxes without drawing.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

CATEGORY = {"id": 1, "name": "nucleus"}


def nuclei(rng: np.random.Generator, width: int, height: int, count: int) -> list[dict]:
    """Random non-touching nuclei: centre, radii and angle, each with its bounding box."""
    out: list[dict] = []
    tries = 0
    while len(out) < count and tries < count * 20:
        tries += 1
        rx, ry = rng.uniform(0.03, 0.07, 2) * min(width, height)
        cx, cy = rng.uniform(rx + 2, width - rx - 2), rng.uniform(ry + 2, height - ry - 2)
        if any((cx - n["cx"]) ** 2 + (cy - n["cy"]) ** 2 < (max(rx, ry) + n["r"]) ** 2
               for n in out):
            continue
        angle = rng.uniform(0, np.pi)
        # the rotated ellipse's axis-aligned half extents
        hx = np.sqrt((rx * np.cos(angle)) ** 2 + (ry * np.sin(angle)) ** 2)
        hy = np.sqrt((rx * np.sin(angle)) ** 2 + (ry * np.cos(angle)) ** 2)
        x0, y0 = max(0, int(np.floor(cx - hx))), max(0, int(np.floor(cy - hy)))
        x1, y1 = min(width, int(np.ceil(cx + hx)) + 1), min(height, int(np.ceil(cy + hy)) + 1)
        out.append({"cx": cx, "cy": cy, "rx": rx, "ry": ry, "angle": angle, "r": max(rx, ry),
                    "brightness": rng.uniform(0.45, 1.0),
                    "bbox": [x0, y0, x1 - x0, y1 - y0]})
    return out


def render(rng: np.random.Generator, width: int, height: int, cells: list[dict],
           bit_depth: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The image (uint16 or uint8) and its label mask (uint16)."""
    top = 65535 if bit_depth == 16 else 255
    img = rng.normal(0.06 * top, 0.015 * top, (height, width)).astype(np.float32)
    mask = np.zeros((height, width), np.uint16)
    for k, n in enumerate(cells, start=1):
        x, y, w, h = n["bbox"]
        yy, xx = np.mgrid[y:y + h, x:x + w].astype(np.float32)
        dx, dy = xx - n["cx"], yy - n["cy"]
        c, s = np.cos(n["angle"]), np.sin(n["angle"])
        d = ((dx * c + dy * s) / n["rx"]) ** 2 + ((-dx * s + dy * c) / n["ry"]) ** 2
        inside = d <= 1.0
        soft = np.clip(1.15 - d, 0, 1) ** 0.5
        texture = rng.uniform(0.8, 1.0, soft.shape).astype(np.float32)
        img[y:y + h, x:x + w] += soft * texture * n["brightness"] * 0.8 * top
        mask[y:y + h, x:x + w][inside] = k
    img = np.clip(img, 0, top).astype(np.uint16 if bit_depth == 16 else np.uint8)
    return img, mask


def write_image(path: Path, img: np.ndarray) -> None:
    if path.suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, img, photometric="minisblack")
    else:
        from PIL import Image

        Image.fromarray(img).save(path, compress_level=1)


def generate(out_dir: str | Path, n_images: int = 20, seed: int = 0, width: int = 256,
             height: int = 256, fmt: str = "tiff", per_image: tuple[int, int] = (4, 12),
             masks: bool = False, start: int = 0) -> dict:
    """Write ``n_images`` images and ``annotations.json`` into ``out_dir``; return the COCO dict.

    ``fmt`` is ``tiff`` (16-bit), ``png`` (16-bit) or ``mixed`` (alternating). ``start`` offsets
    file numbers (and the per-image seeds), so a second call can add images to a folder.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if masks:
        (out / "masks").mkdir(exist_ok=True)
    coco = {"info": {"description": f"jupyter-mlops synthetic cells, seed {seed}"},
            "images": [], "annotations": [], "categories": [CATEGORY]}
    ann_id = 1
    for i in range(start, start + n_images):
        rng = np.random.default_rng([seed, i])  # per image: images are independent of n
        ext = {"tiff": ".tif", "png": ".png"}.get(fmt) or (".tif" if i % 2 == 0 else ".png")
        name = f"img_{i:04d}{ext}"
        cells = nuclei(rng, width, height, int(rng.integers(per_image[0], per_image[1] + 1)))
        img, mask = render(rng, width, height, cells)
        write_image(out / name, img)
        if masks:
            write_image(out / "masks" / f"img_{i:04d}.png", mask)
        coco["images"].append({"id": i + 1, "file_name": name, "width": width,
                               "height": height})
        for n in cells:
            x, y, w, h = n["bbox"]
            coco["annotations"].append({"id": ann_id, "image_id": i + 1, "category_id": 1,
                                        "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
            ann_id += 1
    (out / "annotations.json").write_text(json.dumps(coco, indent=1))
    return coco


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Write a seeded synthetic microscopy dataset.")
    p.add_argument("out_dir")
    p.add_argument("--n", type=int, default=20, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=256, help="width and height in pixels")
    p.add_argument("--format", choices=["tiff", "png", "mixed"], default="tiff")
    p.add_argument("--masks", action="store_true", help="also write label masks")
    a = p.parse_args(argv)
    coco = generate(a.out_dir, a.n, a.seed, a.size, a.size, a.format, masks=a.masks)
    print(f"{len(coco['images'])} images, {len(coco['annotations'])} nuclei in {a.out_dir}")


if __name__ == "__main__":
    main()
