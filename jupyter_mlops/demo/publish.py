"""Publish the synthetic cell images as a version of a shared dataset, so a fresh platform has
data for the cell-detection template::

    # in a lab terminal (the control plane and your token come from the environment)
    python -m jupyter_mlops.demo.publish                     # 200 images of 256 px as "cells"
    python -m jupyter_mlops.demo.publish --n 24 --size 128 --name cells-small

    # from elsewhere: the hub's URL and a token of a lab member
    python -m jupyter_mlops.demo.publish --url http://HUB/services/mlops/ --token TOKEN

The images are 16-bit TIFF with COCO boxes (``annotations.json``), seeded: the same arguments
always publish the same bytes, so publishing twice adds no new objects to the store.
"""
from __future__ import annotations

import argparse
import tempfile

from . import cells


def publish_demo(name: str = "cells", n_images: int = 200, seed: int = 0, size: int = 256,
                 client=None, project: str | None = None, message: str = "") -> dict:
    """Generate and publish; returns the new version (as :func:`datasets.publish` does)."""
    from jupyter_mlops import datasets

    with tempfile.TemporaryDirectory(prefix="mlops-cells-") as tmp:
        coco = cells.generate(tmp, n_images=n_images, seed=seed, width=size, height=size)
        return datasets.publish(
            tmp, name, client=client, project=project,
            message=message or (f"synthetic nuclei: {n_images} images of {size} px, seed "
                                f"{seed}, {len(coco['annotations'])} boxes"))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Publish the synthetic cell images as a dataset.")
    p.add_argument("--name", default="cells", help="dataset name (cells)")
    p.add_argument("--n", type=int, default=200, help="number of images (200)")
    p.add_argument("--size", type=int, default=256, help="width and height in pixels (256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--project", default=None, help="project of a new dataset (default)")
    p.add_argument("--url", default=None, help="control plane URL (default: from the lab)")
    p.add_argument("--token", default=None, help="hub token (default: from the lab)")
    a = p.parse_args(argv)
    from jupyter_mlops.client import ControlPlane

    client = ControlPlane(a.url, a.token) if (a.url or a.token) else None
    v = publish_demo(a.name, a.n, a.seed, a.size, client=client, project=a.project)
    print(f"published {a.name} {v['version']}: {v['summary']['images']} images")


if __name__ == "__main__":
    main()
