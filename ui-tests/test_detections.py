"""Detections of evaluated runs in the Experiments panel, in Chromium.

A data scientist opens an evaluated run and sees its error gallery (images with missed and false
cells, most errors first, with crops) and every image with its boxes; compares two evaluated
runs side by side on the same validation images and their two galleries; a run without an
evaluation shows no detections; the dark theme is checked too. The runs follow the artifact
contract of the issue (ui-tests/detections_data.py), with errors chosen per image, so every
count asserted below is known in advance.
"""
from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from conftest import hub_login, main_tab, open_lab, open_mlops_sidebar, shot
from detections_data import FIVE, FIVE_IMAGES, N_IMAGES, UNEVALUATED, seed_five_runs, seed_runs
from playwright.sync_api import expect

USER, PASSWORD = "dora9", "dora9-first-login-pw"
WAIT = 30_000  # ms; the machine running the suite is shared and often busy


@pytest.fixture
def evaluated(platform, monkeypatch, tmp_path):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", platform.admin_token())
    client = mlflow.MlflowClient(tracking_uri=f"{platform.url}/services/mlflow")
    return seed_runs(client, tmp_path)


def wait_for_images(scope, count: int) -> None:
    """Every detection image in ``scope`` shown, its bytes downloaded and decoded."""
    frames = scope.get_by_test_id("detection-image")
    expect(frames).to_have_count(count, timeout=WAIT)
    for i in range(count):
        # thumbnails load only when scrolled near: bring each one into view
        frames.nth(i).scroll_into_view_if_needed()
        img = frames.nth(i).locator("img")
        expect(img).to_have_js_property("complete", True, timeout=WAIT)
        assert img.evaluate("img => img.naturalWidth") == 256


def to_top(locator) -> None:
    """Scroll so ``locator`` starts at the top of its scroll container (for screenshots)."""
    locator.evaluate("el => el.scrollIntoView({block: 'start'})")


def test_error_gallery_and_two_runs_side_by_side(page, platform, evaluated):
    exp_id, expected, _ = evaluated
    good, weak = expected["detector-good"], expected["detector-weak"]
    platform.add_user(USER, PASSWORD)
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)
    image_requests: list[str] = []
    page.on("request", lambda r: "eval%2Fimages" in r.url and image_requests.append(r.url))

    sidebar.get_by_test_id("experiments-list").get_by_role("link", name="ui-detections").click()
    table = page.get_by_role("table", name="Runs")
    expect(table.get_by_role("row")).to_have_count(4, timeout=WAIT)  # header + 3 runs

    # The weak run's detail: totals, then the error gallery, most errors first.
    table.get_by_role("link", name="detector-weak", exact=True).click()
    section = page.get_by_test_id("run-detections")
    totals = section.get_by_test_id("detection-totals")
    expect(totals).to_have_count(1, timeout=WAIT)
    expect(totals.get_by_test_id("total-missed")).to_have_text(str(weak.missed))
    expect(totals.get_by_test_id("total-false")).to_have_text(str(weak.false))
    expect(totals).to_contain_text(f"{N_IMAGES}{weak.cells}{weak.predicted}")
    assert (weak.missed, weak.false) == (9, 6)  # the errors detections_data chose
    gallery = section.get_by_test_id("error-gallery")
    expect(section.get_by_role("tab", name=f"Error gallery ({len(weak.gallery)})")).to_be_visible()
    cards = gallery.get_by_test_id("error-card")
    expect(cards).to_have_count(len(weak.gallery), timeout=WAIT)
    assert [c.get_attribute("data-image") for c in cards.all()] == [g[0] for g in weak.gallery]
    assert weak.gallery[0] == ("img_0002", 3, 1)
    first = cards.first
    expect(first.get_by_test_id("error-count")).to_have_text("4 errors")
    expect(first.get_by_test_id("image-counts")).to_contain_text("3 missed · 1 false")
    # only the offending boxes are drawn in the gallery, each with a crop of its own
    expect(first.locator("rect[data-kind=missed]")).to_have_count(3 + 3)  # image + crops
    expect(first.locator("rect[data-kind=false]")).to_have_count(1 + 1)
    expect(first.locator("rect[data-kind=gt], rect[data-kind=pred]")).to_have_count(0)
    expect(first.get_by_role("img", name=re.compile("^missed cell"))).to_have_count(3)
    wait_for_images(gallery, len(weak.gallery))
    # the gallery fetched the images it shows, not all of the run's images
    weak_images = {u for u in image_requests if weak.run_id in u}
    assert 0 < len(weak_images) <= len(weak.gallery), weak_images
    expect(section.locator(".jp-mlops-det-legend")).to_contain_text("missed cell (false negative)")
    to_top(section)
    shot(page, "detections-01-run-error-gallery")

    # Every image of the run with all its boxes, twelve to a page.
    section.get_by_role("tab", name=f"All images ({N_IMAGES})").click()
    grid = section.get_by_test_id("detection-image")
    expect(grid).to_have_count(12, timeout=WAIT)
    expect(section.get_by_test_id("detections-pager")).to_contain_text(f"images 1–12 of {N_IMAGES}")
    img2 = section.locator("[data-testid=detection-image][data-image=img_0002]")
    expect(img2.locator("rect[data-kind=missed]")).to_have_count(3)
    expect(img2.locator("rect[data-kind=false]")).to_have_count(1)
    expect(img2.locator("rect[data-kind=pred]")).to_have_count(6 - 3)  # 6 cells, 3 found
    expect(img2.locator("rect[data-kind=gt]")).to_have_count(6 - 3)
    section.get_by_role("button", name="next ›").click()
    expect(grid).to_have_count(N_IMAGES - 12, timeout=WAIT)
    shot(page, "detections-02-run-all-images")

    # A run that was never evaluated shows no detections (in its own tab).
    main_tab(page, "Experiment: ui-detections").click()
    eval_listing = re.compile(r"/mlops/api/runs/[^/?]+/artifacts\?(.*&)?path=eval(&|$)")
    with page.expect_response(lambda r: eval_listing.search(r.url), timeout=WAIT) as listed:
        table.get_by_role("link", name=UNEVALUATED, exact=True).click()
    assert listed.value.ok, listed.value.status
    unevaluated = page.locator(".jp-mlops-run-tab:visible")
    expect(unevaluated.get_by_test_id("run-detail")).to_contain_text("Parameters (1)",
                                                                     timeout=WAIT)
    # two frames after its eval/ listing came back, the tab shows what that listing said
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    expect(unevaluated.get_by_test_id("run-detections")).to_have_count(0)

    # Two evaluated runs side by side on the same images, the largest difference first.
    main_tab(page, "Experiment: ui-detections").click()
    page.get_by_role("checkbox", name="Select detector-good").check()
    page.get_by_role("checkbox", name="Select detector-weak").check()
    page.get_by_role("tab", name="Compare (2)").click()
    compare = page.get_by_test_id("compare-detections")
    expect(compare.get_by_test_id("detection-totals")).to_have_count(2, timeout=WAIT)
    pairs = compare.get_by_test_id("detection-pair")
    expect(pairs).to_have_count(6, timeout=WAIT)
    expect(compare.get_by_test_id("detections-pager")).to_contain_text(f"images 1–6 of {N_IMAGES}")
    # img_0002: the good run got it right (0 errors), the weak one has 4
    top = pairs.first
    expect(top).to_have_attribute("data-image", "img_0002")
    sides = top.locator("figure")
    expect(sides).to_have_count(2)
    expect(sides.nth(0)).to_have_attribute("data-run", "detector-good")
    expect(sides.nth(0).get_by_test_id("image-counts")).to_contain_text("0 missed · 0 false")
    expect(sides.nth(1).get_by_test_id("image-counts")).to_contain_text("3 missed · 1 false")
    expect(sides.nth(0).locator("rect[data-kind=pred]")).to_have_count(6)
    wait_for_images(top, 2)
    to_top(compare)
    shot(page, "detections-03-compare-side-by-side")

    # Ordered by name instead, the first pair is the first image.
    compare.get_by_label("Order images").select_option("name")
    expect(pairs.first).to_have_attribute("data-image", "img_0000")

    # Both runs' error galleries next to each other, with their own counts.
    compare.get_by_role("tab", name="Error galleries").click()
    galleries = compare.get_by_test_id("error-gallery")
    expect(galleries).to_have_count(2, timeout=WAIT)
    good_gallery = compare.locator("[data-testid=error-gallery][data-run=detector-good]")
    expect(good_gallery.get_by_test_id("gallery-summary")).to_have_text(
        f"{good.missed} missed · {good.false} false in {len(good.gallery)} of {N_IMAGES} images")
    assert [c.get_attribute("data-image") for c in good_gallery.get_by_test_id("error-card").all()] \
        == [g[0] for g in good.gallery] == ["img_0007", "img_0003", "img_0005"]
    expect(compare.locator("[data-testid=error-gallery][data-run=detector-weak]")
           .get_by_test_id("error-card")).to_have_count(len(weak.gallery))
    wait_for_images(good_gallery, len(good.gallery))
    to_top(compare.get_by_role("tablist", name="Detections comparison"))
    shot(page, "detections-04-compare-galleries")

    # A run without an evaluation next to an evaluated one: said so, nothing drawn.
    page.get_by_role("tab", name="Runs").click()
    page.get_by_role("checkbox", name="Select detector-weak").uncheck()
    page.get_by_role("checkbox", name=f"Select {UNEVALUATED}").check()
    page.get_by_role("tab", name="Compare (2)").click()
    expect(page.get_by_test_id("compare-detections")).to_contain_text(
        f"{UNEVALUATED} logged no eval/detections.json", timeout=WAIT)

    # The dark theme: boxes, legend and cards follow it.
    page.get_by_role("tab", name="Runs").click()
    page.get_by_role("checkbox", name=f"Select {UNEVALUATED}").uncheck()
    page.get_by_role("checkbox", name="Select detector-weak").check()
    page.get_by_role("tab", name="Compare (2)").click()
    expect(page.get_by_test_id("detection-pair")).to_have_count(6, timeout=WAIT)
    page.get_by_role("menuitem", name="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Theme$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^JupyterLab Dark$")).click()
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false", timeout=WAIT)
    wait_for_images(page.get_by_test_id("detection-pair").first, 2)
    to_top(page.get_by_test_id("compare-detections"))
    shot(page, "detections-05-dark")
    # back to the light theme: the lab remembers it for the user's later tests
    page.get_by_role("menuitem", name="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Theme$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^JupyterLab Light$")).click()
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "true", timeout=WAIT)


def test_five_runs_compared_image_by_image_where_they_disagree_most_first(page, platform,
                                                                         monkeypatch, tmp_path):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", platform.admin_token())
    client = mlflow.MlflowClient(tracking_uri=f"{platform.url}/services/mlflow")
    _, ids = seed_five_runs(client, tmp_path)
    platform.add_user(USER, PASSWORD)
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)
    sidebar.get_by_test_id("experiments-list").get_by_role("link", name=FIVE).click()
    table = page.get_by_role("table", name="Runs")
    expect(table.get_by_role("row")).to_have_count(6, timeout=WAIT)  # header + 5 runs
    for run_name in ids:
        page.get_by_role("checkbox", name=f"Select {run_name}").check()
    page.get_by_role("tab", name="Compare (5)").click()

    compare = page.get_by_test_id("compare-detections")
    expect(compare.get_by_test_id("detection-totals")).to_have_count(5, timeout=WAIT)
    expect(compare.get_by_test_id("disagreement-chart")).to_be_visible()
    pairs = compare.get_by_test_id("detection-pair")
    expect(pairs).to_have_count(FIVE_IMAGES, timeout=WAIT)
    # run-3 found nothing on img_0004, the others everything: the runs disagree most there,
    # then on img_0001 (run-2 missed one cell); where all agree the disagreement is 0
    expect(pairs.first).to_have_attribute("data-image", "img_0004")
    expect(pairs.nth(1)).to_have_attribute("data-image", "img_0001")
    expect(pairs.nth(2).get_by_test_id("disagreement")).to_have_text("disagreement 0.00")
    sides = pairs.first.locator("figure")
    expect(sides).to_have_count(5)
    assert [sides.nth(i).get_attribute("data-run") for i in range(5)] == list(ids)
    expect(sides.nth(2).get_by_test_id("image-scores")).to_contain_text("AP@.5 0.00 · count -")
    expect(sides.nth(0).get_by_test_id("image-scores")).to_contain_text("AP@.5 1.00 · count 0")
    expect(sides.nth(2).locator("rect[data-kind=missed]")).not_to_have_count(0)
    wait_for_images(pairs.first, 5)
    to_top(compare)
    shot(page, "detections-08-five-runs")


def test_copy_the_cell_detection_template_opens_its_readme(page, platform):
    from jupyter_mlops.demo import template

    readme = (template.source("cells") / "README.md").read_text().splitlines()[0]
    platform.add_user(USER, PASSWORD)
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)

    # The sidebar proposes the template's folder; a folder of its own keeps reruns independent.
    row = sidebar.get_by_test_id("template-cells")
    folder = row.get_by_label("Folder for the cell detection template")
    expect(folder).to_have_value("cell-detection", timeout=WAIT)
    dest = f"cells-{uuid.uuid4().hex[:6]}"
    folder.fill(dest)
    copy = row.get_by_role("button", name="Copy the cell detection template")
    copy.click()
    expect(row.get_by_role("status")).to_contain_text(f"files into {dest}/", timeout=WAIT)
    # the copy's README opens in the main area
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="README.md")
    expect(tab).to_be_visible(timeout=WAIT)
    expect(tab).to_have_attribute("title", re.compile(rf"{dest}/README.md"))
    expect(page.locator("#jp-main-dock-panel .jp-FileEditor:visible, "
                        "#jp-main-dock-panel .jp-RenderedMarkdown:visible").first
           ).to_contain_text(readme.lstrip("# "), timeout=WAIT)
    shot(page, "detections-06-template-copied")

    # The same folder again: the server refuses (409), the reason shows inline, nothing opens.
    copy.click()
    expect(row.get_by_role("alert")).to_contain_text(f"{dest} exists and is not empty",
                                                     timeout=WAIT)
    expect(row.get_by_role("status")).to_have_count(0)
    expect(tab).to_have_count(1)
    shot(page, "detections-07-template-exists")
