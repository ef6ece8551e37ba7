"""The walking skeleton as a person uses it, in Chromium against `jupyter-mlops up`.

The administrator logs in, adds a colleague on the hub admin page; the colleague logs in
(choosing a password at first login), opens JupyterLab, sees the live statuses in the MLOps
sidebar, starts an MLflow run from the server's own environment and opens it through the
sidebar's MLflow link.
"""
from __future__ import annotations

import json
import re
import subprocess

import psutil
from conftest import hub_login, hub_logout, open_lab, open_mlops_sidebar, shot
from playwright.sync_api import expect

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
    expect(sidebar.get_by_test_id("status-gpus")).to_contain_text("no GPU on this server")
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
