"""MLflow's own UI through the gateway's allow-list, as a project member who is not an admin.

The gateway forwards only the MLflow routes it can scope; this test browses the pages a lab uses
(experiment, run with its metrics and artifacts, registered model) and asserts the UI shows
them and that none of its requests was refused -- and that a non-member sees none of it.
"""
from __future__ import annotations

import re
import time

from playwright.sync_api import expect

from tests.experiments.test_gateway_doors import PROJECT, ann_in_the_private_project, as_user

from conftest import hub_login, shot

WAIT = 60_000


def test_the_mlflow_ui_works_for_a_member_and_shows_nothing_to_others(platform, page, tmp_path):
    ann_in_the_private_project(platform)
    (tmp_path / "notes.txt").write_text("cells detected: 42\n")
    name = f"ui-{PROJECT}-{time.time_ns()}"
    with as_user(platform, platform.token("ann12")) as client:
        exp = client.create_experiment(name, tags={"mlops.project": PROJECT})
        run = client.create_run(exp, run_name="unet-lr0.01").info.run_id
        for step in range(5):
            client.log_metric(run, "loss", 1.0 / (step + 1), step=step)
        client.log_param(run, "lr", "0.01")
        client.log_artifact(run, str(tmp_path / "notes.txt"))
        client.set_terminated(run)
        client.create_registered_model(f"{name}-model")  # placed in the project by its version
        client.create_model_version(f"{name}-model", f"mlflow-artifacts:/{exp}/{run}/artifacts",
                                    run_id=run)

    refused = []
    page.on("response", lambda r: refused.append(f"{r.status} {r.request.method} {r.url}")
            if "/services/mlflow/" in r.url and r.status >= 400 else None)

    # Given ann, a member of the private project, in MLflow's UI
    hub_login(page, platform, "ann12", "password-ann12")
    base = f"{platform.url}/services/mlflow/"
    page.goto(f"{base}#/experiments")
    page.get_by_text("Model training").first.click()  # MLflow 3's UI opens in its GenAI mode
    page.goto(f"{base}#/experiments/{exp}")
    expect(page.get_by_text("unet-lr0.01").first).to_be_visible(timeout=WAIT)
    page.goto(f"{base}#/experiments/{exp}/runs/{run}")
    expect(page.get_by_text("lr", exact=True).first).to_be_visible(timeout=WAIT)
    page.goto(f"{base}#/experiments/{exp}/runs/{run}/model-metrics")
    expect(page.get_by_text("loss").first).to_be_visible(timeout=WAIT)
    page.goto(f"{base}#/experiments/{exp}/runs/{run}/artifacts")
    expect(page.get_by_text("notes.txt").first).to_be_visible(timeout=WAIT)
    page.get_by_text("notes.txt").first.click()
    expect(page.get_by_text("cells detected: 42").first).to_be_visible(timeout=WAIT)
    page.goto(f"{base}#/models")
    expect(page.get_by_text(f"{name}-model").first).to_be_visible(timeout=WAIT)
    shot(page, "mlflow-ui-member")
    # Then nothing the UI asked for on these pages failed, but the MLflow assistant (a GenAI
    # feature the platform does not offer) and the current-user query of MLflow's own login
    # (not running: the hub authenticates)
    unexpected = [r for r in refused if not re.search(
        r"^403 GET .*/ajax-api/(3\.0/mlflow/assistant/\w+|2\.0/mlflow/users/current)$", r)]
    assert not unexpected, "\n".join(refused)

    # And bob, who is not a member, finds neither the experiment nor the run
    bob = platform.login("bob12", "password-bob12")
    assert bob.get(base, headers={"Accept": "text/html"}).ok  # the service's OAuth login
    r = bob.get(f"{base}ajax-api/2.0/mlflow/runs/get", params={"run_id": run})
    assert r.status_code == 404
    r = bob.post(f"{base}ajax-api/2.0/mlflow/experiments/search", json={"max_results": 1000},
                 headers={"Sec-Fetch-Site": "same-origin", "Referer": base})
    assert r.ok and name not in r.text
    r = bob.get(f"{base}ajax-api/2.0/mlflow/registered-models/search")
    assert r.ok and name not in r.text
