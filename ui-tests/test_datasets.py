"""The datasets panel as a data scientist uses it, in Chromium against `jupyter-mlops up`.

v1 of the shared cell dataset exists already (published from code); the user publishes v2 from
a workspace folder with the panel (progress bar), browses the thumbnails, opens an image with
its annotation boxes drawn over it in a tab of its own (zoom, pan, keyboard), and compares v1
with v2 in another tab. The images are not square, so a stretched image would show.
"""
from __future__ import annotations

import json
import re

from conftest import choose_dataset, hub_login, main_tab, open_lab, run_command, shot
from playwright.sync_api import expect

from jupyter_mlops import datasets

from jupyter_mlops.client import ControlPlane
from jupyter_mlops.demo import cells

USER, PASSWORD = "uma", "uma-first-login-pw"
LOADED = 30_000  # ms: answers that need the server (a shared 2-core CI machine can be slow)
W, H = 160, 96  # the images' size
# the viewer's image as drawn, and its annotation boxes as fractions of it
def image_width_until(page, condition: str) -> None:
    """Wait until the viewer's image width ``w`` meets ``condition`` (a JS expression): a zoom
    is drawn at the next render, not at the click."""
    page.wait_for_function("() => { const w = document.querySelector('.jp-mlops-iv-canvas img')"
                           f".getBoundingClientRect().width; return {condition}; }}")


GEOMETRY = """() => {
  const v = document.querySelector('.jp-mlops-iv');
  const img = v.querySelector('.jp-mlops-iv-canvas img');
  const i = img.getBoundingClientRect();
  const boxes = [...v.querySelectorAll('svg[data-testid=annotations] rect')].map(r => {
    const b = r.getBoundingClientRect();
    return [(b.left - i.left) / i.width, (b.top - i.top) / i.height, b.width / i.width,
            b.height / i.height];
  });
  return {left: i.left, width: i.width, height: i.height, natural: [img.naturalWidth,
          img.naturalHeight], boxes};
}"""


def same_boxes(drawn, boxes) -> None:
    """The drawn boxes sit on the annotation's image pixels (to a tenth of a pixel)."""
    assert len(drawn) == len(boxes)
    for d, b in zip(drawn, boxes):
        want = [b["x"] / W, b["y"] / H, b["w"] / W, b["h"] / H]
        assert all(abs(x - y) * W < 0.1 for x, y in zip(d, want)), (d, want)


def test_browse_publish_and_diff_the_cell_dataset(page, platform, tmp_path):
    platform.add_user(USER, PASSWORD)
    v1_dir = tmp_path / "v1"
    cells.generate(v1_dir, n_images=12, seed=3, width=W, height=H)
    client = ControlPlane(f"{platform.url}/services/mlops/", platform.token(USER))
    # names of its own: the session's platform is shared with tests/datasets ("cells" there)
    assert datasets.publish(v1_dir, "ui-cells", "first batch", client=client)["version"] == "v1"

    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    # v2 in the workspace: the same 12 images, one changed, four more
    folder = platform.data_dir / "users" / USER / "data" / "cells"
    cells.generate(folder, n_images=16, seed=3, width=W, height=H)
    cells.generate(folder / "x", n_images=1, seed=77, width=W, height=H)
    (folder / "x" / "img_0000.tif").replace(folder / "img_0005.tif")
    for f in (folder / "x").iterdir():
        f.unlink()
    (folder / "x").rmdir()
    # and a correction of two images' annotations: a box of img_0002 nudged, one of img_0003
    # deleted (the diff shows them object by object, with who published them)
    doc = json.loads((folder / "annotations.json").read_text())
    ids = {im["file_name"]: im["id"] for im in doc["images"]}
    nudged = next(a for a in doc["annotations"] if a["image_id"] == ids["img_0002.tif"])
    nudged["bbox"][0] += 6
    gone = next(a for a in doc["annotations"] if a["image_id"] == ids["img_0003.tif"])
    doc["annotations"].remove(gone)
    (folder / "annotations.json").write_text(json.dumps(doc))

    run_command(page, "open the dataset browser")
    view = page.locator(".jp-mlops-datasets-main")
    choose_dataset(view, "ui-cells", timeout=LOADED)
    expect(view.get_by_test_id("dataset-summary")).to_contain_text("12 ·", timeout=LOADED)
    expect(view.get_by_label("Dataset", exact=True)).to_have_value("ui-cells")

    # publish v2 from the workspace folder, with a seeded split
    view.get_by_role("tab", name="Publish").click()
    view.get_by_label("Workspace folder").fill("data/cells")
    view.get_by_label("Message").fill("four more images, one relabelled")
    view.get_by_label(re.compile("Split seed")).fill("7")
    view.get_by_label(re.compile("Annotation tool")).fill("napari 0.5")
    view.get_by_role("button", name="What changed?").click()
    expect(view.get_by_test_id("folder-status")).to_contain_text(
        "against v1: 4 added, 2 modified, 0 removed, 11 unchanged", timeout=LOADED)
    view.get_by_role("button", name="Publish folder").click()
    expect(view.locator(".jp-mlops-ds-progress")).to_contain_text("published v2",
                                                                   timeout=60_000)
    shot(page, "datasets-01-published")

    # the grid: lazy thumbnails of v2, rendered from 16-bit TIFFs
    view.get_by_role("tab", name="Images").click()
    expect(view.get_by_label("Version")).to_have_value("v2", timeout=LOADED)
    train = client.dataset("ui-cells")["versions"][0]["summary"]["splits"]["train"]
    expect(view.get_by_test_id("split-sizes")).to_contain_text(f"train {train}", timeout=LOADED)
    grid = view.get_by_test_id("dataset-grid")
    expect(grid.locator("img")).to_have_count(16, timeout=LOADED)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-mlops-datasets-main [data-testid=dataset-grid] img')]"
        ".every(i => i.complete && i.naturalWidth > 0)", timeout=30_000)
    shot(page, "datasets-02-grid")

    # one image in a main-area tab, at its own aspect ratio, its nuclei boxes drawn over it
    grid.locator("figure[data-path='img_0002.tif']").click()
    viewer = page.get_by_role("region", name="Image img_0002.tif")
    expect(viewer).to_contain_text("annotated objects", timeout=LOADED)
    expect(viewer.get_by_test_id("image-position")).to_have_text("3 / 16")
    boxes = platform.api("GET", "services/mlops/api/datasets/ui-cells/versions/v2/annotations"
                         "?path=img_0002.tif", platform.token(USER)).json()["boxes"]
    expect(viewer.locator("svg rect")).to_have_count(len(boxes))
    page.wait_for_function("() => { const i = document.querySelector('.jp-mlops-iv-canvas img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    fitted = page.evaluate(GEOMETRY)
    assert fitted["natural"][0] * H == fitted["natural"][1] * W  # the server kept the shape
    assert abs(fitted["width"] / fitted["height"] - W / H) < 0.01, fitted
    assert fitted["width"] > 2 * W  # fitted to the tab, wider than the sidebar ever is
    same_boxes(fitted["boxes"], boxes)
    shot(page, "datasets-03-viewer")

    # zoom with the buttons and the wheel, pan by dragging: the boxes stay on their pixels
    viewer.get_by_role("button", name="Zoom in").click()
    viewer.get_by_role("button", name="Zoom in").click()
    image_width_until(page, f"Math.abs(w / {fitted['width']} - 1.5625) < 0.01")
    zoomed = page.evaluate(GEOMETRY)
    assert abs(zoomed["width"] / fitted["width"] - 1.25 ** 2) < 0.01, (zoomed, fitted)
    same_boxes(zoomed["boxes"], boxes)
    stage = viewer.locator(".jp-mlops-iv-stage").bounding_box()
    cx, cy = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, 200)  # away: smaller
    image_width_until(page, f"w < {zoomed['width'] - 1}")
    wheeled = page.evaluate(GEOMETRY)
    same_boxes(wheeled["boxes"], boxes)
    page.mouse.down()
    page.mouse.move(cx + 60, cy + 10, steps=4)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('.jp-mlops-iv-canvas img')"
                           f".getBoundingClientRect().left > {wheeled['left'] + 30}")
    panned = page.evaluate(GEOMETRY)
    assert abs(panned["left"] - wheeled["left"] - 60) < 1, (panned, wheeled)  # with the pointer
    assert panned["width"] == wheeled["width"]
    same_boxes(panned["boxes"], boxes)
    viewer.get_by_role("button", name="100%").click()
    expect(viewer.get_by_test_id("image-zoom")).to_have_text("100%")
    assert abs(page.evaluate(GEOMETRY)["width"] - W) < 0.5

    # the keyboard steps through the version; another thumbnail reuses the tab; Escape closes
    page.keyboard.press("ArrowRight")
    viewer = page.locator(".jp-mlops-iv")
    expect(viewer.get_by_test_id("image-name")).to_have_text("img_0003.tif", timeout=LOADED)
    expect(viewer.get_by_test_id("image-position")).to_have_text("4 / 16")
    page.keyboard.press("j")
    expect(viewer.get_by_test_id("image-position")).to_have_text("5 / 16", timeout=LOADED)
    page.keyboard.press("ArrowLeft")
    expect(viewer.get_by_test_id("image-name")).to_have_text("img_0003.tif", timeout=LOADED)
    main_tab(page, "Datasets").click()
    grid.locator("figure[data-path='img_0007.tif']").click()
    expect(viewer.get_by_test_id("image-name")).to_have_text("img_0007.tif", timeout=LOADED)
    expect(page.locator(".jp-mlops-iv")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(page.locator(".jp-mlops-iv")).to_have_count(0)

    # v1 -> v2 in a tab of its own: four added, one changed (before/after thumbnails)
    view.get_by_role("tab", name="Diff").click()
    view.get_by_role("button", name="Compare").click()
    diff = page.get_by_test_id("dataset-diff")
    expect(diff).to_contain_text("v1 → v2: 4 added, 0 removed, 2 changed", timeout=LOADED)
    expect(diff.locator(".jp-mlops-ds-badge.added")).to_have_count(4)
    expect(diff.locator(".jp-mlops-ds-badge.after")).to_have_count(2)
    # the corrected annotations, object by object, drawn over the images
    changes = diff.get_by_test_id("dataset-object-changes")
    expect(changes).to_contain_text("0 added, 1 removed, 1 moved on 2 images", timeout=LOADED)
    card = changes.locator("figure[data-path='img_0002.tif']")
    expect(card.locator("rect.moved")).to_have_count(1)
    expect(card.get_by_test_id("annotation-change")).to_contain_text(
        f"v2 by {USER} with napari 0.5")
    expect(changes.locator("figure[data-path='img_0003.tif'] rect.removed")).to_have_count(1)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=dataset-diff] img')]"
        ".every(i => i.complete && i.naturalWidth > 0)", timeout=30_000)
    shot(page, "datasets-04-diff")

    # the same view in the dark theme (JupyterLab's variables only, no hard-coded colours)
    page.get_by_role("menuitem", name="Settings").click()
    page.locator(".lm-Menu-itemLabel").get_by_text("Theme", exact=True).click()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false",
                                                   timeout=LOADED)
    shot(page, "datasets-05-diff-dark")
    main_tab(page, "Datasets").click()
    view.get_by_role("button", name="Compare").click()  # the same versions: the same tab
    expect(page.get_by_test_id("dataset-diff")).to_have_count(1)
    main_tab(page, "Datasets").click()
    view.get_by_role("tab", name="Images").click()
    grid.locator("figure[data-path='img_0002.tif']").click()
    page.wait_for_function("() => { const i = document.querySelector('.jp-mlops-iv-canvas img');"
                           " return i && i.complete && i.naturalWidth > 0; }")
    viewer.get_by_role("button", name="Zoom in").click()
    shot(page, "datasets-05-viewer-dark")
    page.keyboard.press("Escape")
    main_tab(page, "Datasets").click()

    # upload from the browser (a progress bar), as a new dataset
    view.get_by_role("tab", name="Publish").click()
    view.get_by_label("Dataset name").fill("ui-uploaded")
    view.get_by_label("Files to upload").set_input_files(
        [str(v1_dir / "img_0000.tif"), str(v1_dir / "annotations.json")])
    view.get_by_role("button", name="Upload and publish").click()
    expect(view.locator(".jp-mlops-ds-progress")).to_contain_text("published v1",
                                                                   timeout=LOADED)
    expect(view.get_by_label("Dataset", exact=True)).to_have_value("ui-uploaded",
                                                                   timeout=LOADED)

    # bad input is shown, not swallowed
    view.get_by_role("tab", name="Publish").click()
    view.get_by_label("Workspace folder").fill("../../etc")
    view.get_by_role("button", name="Publish folder").click()
    expect(view.get_by_role("alert")).to_contain_text("leaves the dataset root", timeout=LOADED)


def test_move_tags_and_mark_a_reference_version(page, platform, tmp_path):
    """The Tags tab: "latest" moved back to v1, a custom tag, the project's reference version."""
    root = tmp_path / "tagged"
    cells.generate(root, n_images=4, seed=5, width=64, height=64)
    client = ControlPlane(f"{platform.url}/services/mlops/", platform.admin_token())
    datasets.publish(root, "ui-tagged", "first", client=client)
    cells.generate(root, n_images=6, seed=5, width=64, height=64)
    assert datasets.publish(root, "ui-tagged", "second", client=client)["version"] == "v2"

    hub_login(page, platform, "admin", platform.admin_password)  # manages every project
    open_lab(page, platform, "admin")
    run_command(page, "open the dataset browser")
    view = page.locator(".jp-mlops-datasets-main")
    choose_dataset(view, "ui-tagged", timeout=LOADED)
    expect(view.get_by_test_id("dataset-summary")).to_contain_text("6 ·", timeout=LOADED)
    expect(view.get_by_label("Dataset", exact=True)).to_have_value("ui-tagged")
    view.get_by_label("Version", exact=True).select_option("v1")
    view.get_by_role("tab", name="Tags").click()
    tags = view.get_by_test_id("dataset-tags")
    expect(tags.locator(".jp-mlops-ds-tag")).to_have_text(["latest → v2"], timeout=LOADED)

    # "latest" back to v1 (v2 turned out wrong); the version list shows the move
    tags.get_by_role("button", name="Move to v1").click()
    expect(tags.get_by_role("status")).to_contain_text("now points at v1", timeout=LOADED)
    expect(tags.locator(".jp-mlops-ds-tag.jp-mod-current")).to_have_text("latest → v1",
                                                                          timeout=LOADED)
    expect(view.get_by_label("Version", exact=True)).to_have_value("v1")
    tags.get_by_label("Tag name").fill("reviewed")
    tags.get_by_role("button", name="Move to v1").click()
    expect(tags.locator(".jp-mlops-ds-tag")).to_have_text(["latest → v1", "reviewed → v1"],
                                                          timeout=LOADED)

    # v1 becomes the reference version of the default project
    tags.get_by_label("Reference project").select_option("default")
    tags.get_by_role("button", name="Mark v1 as reference").click()
    expect(tags.get_by_role("status")).to_contain_text(
        "ui-tagged@v1 is now the reference version of project default", timeout=LOADED)
    expect(tags.locator(".jp-mlops-ds-refs")).to_contain_text("default", timeout=LOADED)
    shot(page, "datasets-06-tags")
    assert client.dataset("ui-tagged")["tags"] == {"latest": "v1", "reviewed": "v1"}

    # a tag that looks like a version name is refused, with the reason shown
    tags.get_by_label("Tag name").fill("v7")
    tags.get_by_role("button", name="Move to v1").click()
    expect(tags.get_by_role("alert")).to_contain_text("looks like a version name",
                                                      timeout=LOADED)
