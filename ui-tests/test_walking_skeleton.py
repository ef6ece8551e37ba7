"""The walking skeleton as a person uses it, in Chromium against `jupyter-mlops up`.

The administrator logs in, adds a colleague on the hub admin page; the colleague logs in
(choosing a password at first login), opens JupyterLab, sees the live statuses in the MLOps
sidebar, starts an MLflow run from the server's own environment and opens it through the
sidebar's MLflow link. Every sidebar section fits the lab's default 250 px, in JupyterLab's own
controls, in the light and dark themes.
"""
from __future__ import annotations

import json
import re
import subprocess
import uuid

import psutil
from conftest import (ARTIFACTS, every_section_open, hub_login, hub_logout, open_lab,
                      open_mlops_sidebar, shot, sidebar_width, use_theme)
from playwright.sync_api import expect

from jupyter_mlops import datasets
from jupyter_mlops.client import ControlPlane
from jupyter_mlops.demo import cells

COLLEAGUE, COLLEAGUE_PASSWORD = "erin", "erin-first-login-pw"


def server_environment(user: str) -> tuple[str, dict]:
    """The interpreter and environment the spawner gave ``user``'s running server."""
    for p in psutil.process_iter(["cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if "jupyterhub-singleuser" in cmd and p.environ().get("JUPYTERHUB_USER") == user:
                return p.info["cmdline"][0], p.environ()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    raise AssertionError(f"no running server of {user}")


def test_admin_adds_a_colleague_who_sees_the_platform_live(page, context, platform):
    # The administrator logs in and adds a colleague through the hub's admin page.
    hub_login(page, platform, "admin", platform.admin_password)
    page.goto(f"{platform.url}/hub/admin")
    page.get_by_role("button", name="Add Users").click()
    page.get_by_placeholder(re.compile("usernames", re.I)).fill(COLLEAGUE)
    page.get_by_role("button", name="Add Users").click()
    # the session's platform holds many users by now: the admin page lists one page of them
    page.get_by_placeholder("Search Users").fill(COLLEAGUE)
    expect(page.get_by_test_id(f"user-name-div-{COLLEAGUE}")).to_be_visible()
    shot(page, "skeleton-01-admin-added-user")
    hub_logout(page, platform)

    # The colleague logs in for the first time (the password is set now) and opens the lab.
    hub_login(page, platform, COLLEAGUE, COLLEAGUE_PASSWORD)
    open_lab(page, platform, COLLEAGUE)
    sidebar = open_mlops_sidebar(page)
    expect(sidebar.get_by_test_id("status-user")).to_contain_text(COLLEAGUE)
    expect(sidebar.get_by_test_id("status-user")).to_contain_text("data scientist")
    expect(sidebar.get_by_test_id("status-mlflow")).to_contain_text(
        re.compile(r"reachable · v\d+\.\d+"), timeout=30_000)
    expect(sidebar.get_by_test_id("status-control-plane")).to_contain_text("reachable · v")
    expect(sidebar.get_by_test_id("status-gpus")).to_contain_text("CPU profile: no GPU requested")
    expect(sidebar.get_by_test_id("status-dataset")).to_contain_text(str(platform.data_dir))
    shot(page, "skeleton-02-sidebar")

    # An MLflow run started from the server's own environment (tracking URI and token given
    # by the spawner, nothing configured by hand) ...
    python, env = server_environment(COLLEAGUE)
    code = (
        "import json, mlflow\n"
        "mlflow.set_experiment('skeleton')\n"
        "with mlflow.start_run(run_name='erin-first-run') as run:\n"
        "    mlflow.log_metric('loss', 0.25)\n"
        "print(json.dumps([run.info.experiment_id, run.info.run_id]))\n"
    )
    out = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    experiment_id, run_id = json.loads(out.stdout.strip().splitlines()[-1])

    # ... opens through the sidebar's MLflow link (hub login carries over via OAuth).
    with context.expect_page() as new_tab:
        sidebar.get_by_role("link", name=re.compile("Open MLflow UI")).click()
    mlflow_page = new_tab.value
    mlflow_page.wait_for_load_state()
    assert "/services/mlflow/" in mlflow_page.url, mlflow_page.url
    # MLflow's own UI rendered (past its loading skeleton): its version under the logo
    expect(mlflow_page.get_by_text(re.compile(r"^\d+\.\d+\.\d+$")).first).to_be_visible(
        timeout=30_000)
    shot(mlflow_page, "skeleton-03a-mlflow-home")
    mlflow_page.goto(f"{platform.url}/services/mlflow/#/experiments/{experiment_id}/runs/{run_id}")
    try:
        expect(mlflow_page.get_by_text("erin-first-run").first).to_be_visible(timeout=30_000)
    finally:
        shot(mlflow_page, "skeleton-03-mlflow-run")


# Where the MLOps sidebar's content is wider than its section, a control or a label is cut
# off or pushes the section into scrolling sideways; a select or input without a jp- class
# (or outside JupyterLab's InputGroup / HTMLSelect) ignores the theme.
SIDEBAR_DAMAGE = """sidebar => {
  const what = e => (e.getAttribute('aria-label') || e.textContent || e.tagName).trim().slice(0, 50);
  const damage = [];
  for (const section of sidebar.querySelectorAll('.lm-AccordionPanel > .lm-Widget')) {
    const box = section.getBoundingClientRect();
    if (section.scrollWidth > section.clientWidth) {
      damage.push(`${section.title || section.className}: ${section.scrollWidth} px wide in ${section.clientWidth}`);
    }
    for (const e of section.querySelectorAll('label, .jp-mlops-field-label, input, select, button, .jp-mlops-chip, .jp-mlops-ds-tag')) {
      const r = e.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
        damage.push(`${what(e)}: ${Math.round(r.left)}-${Math.round(r.right)} outside ${Math.round(box.left)}-${Math.round(box.right)}`);
      }
      if (e.matches('label, .jp-mlops-field-label') && e.scrollWidth > e.clientWidth + 1) {
        damage.push(`label "${what(e)}" cut: ${e.scrollWidth} px in ${e.clientWidth}`);
      }
    }
  }
  for (const c of sidebar.querySelectorAll('input, select')) {
    if (!/(^|\\s)jp-/.test(c.className) && !c.parentElement.matches('.jp-InputGroup, .jp-HTMLSelect')) {
      damage.push(`unstyled ${c.outerHTML.slice(0, 100)}`);
    }
  }
  return damage;
}"""


MODEL = "erin-narrow-sidebar-cell-detector"  # and a suffix: the test may run again


def test_sidebar_fits_250_px_in_light_and_dark_themes(page, platform, tmp_path):
    # Every section open at the lab's default 250 px (and at 600 px): no control or label
    # outside its section, JupyterLab's own controls only, nothing logged as an error.
    platform.add_user(COLLEAGUE, COLLEAGUE_PASSWORD)
    page.set_viewport_size({"width": 1400, "height": 3400})  # the whole sidebar in the shots
    ARTIFACTS.mkdir(exist_ok=True)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    hub_login(page, platform, COLLEAGUE, COLLEAGUE_PASSWORD)
    open_lab(page, platform, COLLEAGUE)
    # a registered model version whose run id and tag are long unbroken words (MLflow's REST
    # API through the gateway, as the person's token)
    token = platform.token(COLLEAGUE)

    def mlflow(method: str, endpoint: str, **kw) -> dict:
        r = platform.api(method, f"services/mlflow/api/2.0/{endpoint}", token, **kw)
        assert r.status_code == 200, r.text
        return r.json()

    experiment = mlflow("POST", "mlflow/experiments/create",
                        json={"name": f"skeleton-narrow-{uuid.uuid4().hex[:8]}"})
    run = mlflow("POST", "mlflow/runs/create", json=experiment)["run"]["info"]
    where = run["artifact_uri"].split("mlflow-artifacts:/", 1)[1]
    mlflow("PUT", f"mlflow-artifacts/artifacts/{where}/model/MLmodel", data=b"flavors: {}\n")
    model = f"{MODEL}-{uuid.uuid4().hex[:6]}"
    mlflow("POST", "mlflow/registered-models/create", json={"name": model})
    mlflow("POST", "mlflow/model-versions/create",
           json={"name": model, "source": run["artifact_uri"] + "/model",
                 "run_id": run["run_id"],
                 "tags": [{"key": "trained_on", "value": "cells@v3-" + "x" * 60}]})
    sidebar = open_mlops_sidebar(page)
    every_section_open(sidebar)
    sidebar.get_by_test_id(f"model-{model}").get_by_role("link").click()
    expect(sidebar.get_by_test_id(f"version-{model}-1")).to_contain_text(
        "trained_on=cells@v3-")
    expect(sidebar.get_by_test_id("status-control-plane")).to_contain_text("reachable")
    # A dataset published now shows in the Datasets section at the shared poller's next
    # round, without a reload (its images fill the section's grid too).
    cells.generate(tmp_path / "cells", n_images=3, seed=5, width=64, height=48)
    client = ControlPlane(f"{platform.url}/services/mlops/", token)
    datasets.publish(tmp_path / "cells", "erin-narrow", "three images", client=client)
    picker = sidebar.get_by_label("Dataset", exact=True)
    expect(picker.locator("option", has_text="erin-narrow")).to_have_count(1)
    picker.select_option("erin-narrow")
    expect(sidebar.locator(".jp-mlops-ds-thumb")).to_have_count(3)

    for width in (250, 600):
        sidebar_width(page, sidebar, width)
        for form in ("New job…", "New sweep…"):  # one form open at a time
            sidebar.get_by_role("button", name=form).click()
            expect(sidebar.get_by_label("GPUs each" if "sweep" in form else "Time limit (s)")) \
                .to_be_visible()
            damage = sidebar.evaluate(SIDEBAR_DAMAGE)
            assert damage == [], (width, form, damage)
        if width == 250:
            sidebar.screenshot(path=str(ARTIFACTS / "sidebar-250px-light.png"))
            use_theme(page, "Dark")
            damage = sidebar.evaluate(SIDEBAR_DAMAGE)
            assert damage == [], ("dark", damage)
            sidebar.screenshot(path=str(ARTIFACTS / "sidebar-250px-dark.png"))
            use_theme(page, "Light")
    assert errors == []
