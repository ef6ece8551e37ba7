"""Project scoping in the MLflow gateway, on the real platform (hub + gateway + MLflow)."""
from __future__ import annotations

import pytest
import requests

from tests.fixtures import until

API = "services/mlflow/api/2.0/mlflow"


@pytest.fixture(scope="module")
def people(platform):
    """ann is in project vision4, bob is not; both are in the default project."""
    for name in ("ann4", "bob4"):
        platform.add_user(name, "password-" + name)
    add_member(platform, "vision4", "ann4", "gateway scope tests")
    return {"ann": platform.token("ann4"), "bob": platform.token("bob4"),
            "admin": platform.admin_token()}


def add_member(platform, project: str, user: str, description: str) -> None:
    """``user`` a member of ``project`` (made by the administrator if it is not there yet)."""
    admin = platform.admin_token()
    r = platform.api("POST", "services/mlops/api/projects", admin,
                     json={"name": project, "description": description})
    assert r.status_code in (201, 409), r.text
    r = platform.api("PUT", f"services/mlops/api/projects/{project}/members/{user}", admin,
                     json={"role": "member"})
    assert r.status_code == 200, r.text


def call(platform, token, method, endpoint, **kw):
    return requests.request(method, f"{platform.url}/{API}/{endpoint}",
                            headers={"Authorization": f"token {token}"}, timeout=30, **kw)


def test_runs_of_another_project_are_404(platform, people):
    ann, bob, admin = people["ann"], people["bob"], people["admin"]
    # Given ann's experiment in project vision4 with one run (whose user tag she tries to forge)
    r = call(platform, ann, "POST", "experiments/create",
             json={"name": "vision4-detector", "tags": [{"key": "mlops.project",
                                                          "value": "vision4"}]})
    assert r.status_code == 200, r.text
    exp = r.json()["experiment_id"]
    r = call(platform, ann, "POST", "runs/create",
             json={"experiment_id": exp, "tags": [{"key": "mlops.user", "value": "bob4"}]})
    assert r.status_code == 200, r.text
    run = r.json()["run"]["info"]["run_id"]
    tags = {t["key"]: t["value"] for t in r.json()["run"]["data"]["tags"]}
    assert tags["mlops.user"] == "ann4"  # stamped by the gateway, not by the client
    assert call(platform, ann, "POST", "runs/log-metric",
                json={"run_id": run, "key": "loss", "value": 0.5, "timestamp": 1,
                      "step": 0}).status_code == 200

    # Then bob, who is not in vision4, gets MLflow's "does not exist" for every way in
    hidden = [
        ("GET", "runs/get", {"params": {"run_id": run}}),
        ("GET", "metrics/get-history", {"params": {"run_id": run, "metric_key": "loss"}}),
        ("GET", "artifacts/list", {"params": {"run_id": run}}),
        ("GET", "experiments/get", {"params": {"experiment_id": exp}}),
        ("GET", "experiments/get-by-name", {"params": {"experiment_name": "vision4-detector"}}),
        ("POST", "runs/search", {"json": {"experiment_ids": [exp]}}),
        ("POST", "runs/log-metric", {"json": {"run_id": run, "key": "loss", "value": 9,
                                              "timestamp": 2, "step": 1}}),
        ("POST", "runs/create", {"json": {"experiment_id": exp}}),
        ("POST", "experiments/create", {"json": {"name": "bob-in-vision4", "tags": [
            {"key": "mlops.project", "value": "vision4"}]}}),
    ]
    for method, endpoint, kw in hidden:
        r = call(platform, bob, method, endpoint, **kw)
        assert r.status_code == 404, (endpoint, r.status_code, r.text)
        assert r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    r = requests.post(f"{platform.url}/services/mlflow/graphql",
                      headers={"Authorization": f"token {bob}"}, timeout=30,
                      json={"query": "query Q($data: MlflowGetRunInput) { mlflowGetRun(input: "
                                     "$data) { run { info { runId } } } }",
                            "variables": {"data": {"runId": run}}})
    assert r.status_code == 404 and "data" not in r.json()
    r = requests.get(f"{platform.url}/services/mlflow/get-artifact",
                     params={"run_id": run, "path": "x"},
                     headers={"Authorization": f"token {bob}"}, timeout=30)
    assert r.status_code == 404
    names = {e["name"] for e in call(platform, bob, "POST", "experiments/search",
                                     json={"max_results": 1000}).json().get("experiments", [])}
    assert "vision4-detector" not in names
    # bob's metric never landed
    hist = call(platform, ann, "GET", "metrics/get-history",
                params={"run_id": run, "metric_key": "loss"}).json()["metrics"]
    assert [m["value"] for m in hist] == [0.5]

    # And ann and the administrator see it all
    for token in (ann, admin):
        assert call(platform, token, "GET", "runs/get", params={"run_id": run}).ok
        names = {e["name"] for e in call(platform, token, "POST", "experiments/search",
                                         json={"max_results": 1000}).json()["experiments"]}
        assert "vision4-detector" in names


def test_new_experiments_land_in_the_default_project(platform, people):
    bob, ann = people["bob"], people["ann"]
    r = call(platform, bob, "POST", "experiments/create", json={"name": "bob4-default"})
    assert r.status_code == 200, r.text
    exp = call(platform, ann, "GET", "experiments/get",
               params={"experiment_id": r.json()["experiment_id"]}).json()["experiment"]
    assert {"key": "mlops.project", "value": "default"} in exp["tags"]
    # moving it into a project bob is not in is refused
    r = call(platform, bob, "POST", "experiments/set-experiment-tag",
             json={"experiment_id": exp["experiment_id"], "key": "mlops.project",
                   "value": "vision4"})
    assert r.status_code == 404


def test_a_removed_member_loses_the_project_within_seconds(platform):
    """The gateway keeps a caller's projects for 5 s (``ProjectScope``'s ttl, so a page of runs
    costs no database read per call); a membership removed stops access within that time."""
    platform.add_user("cara4", "password-cara4")
    cara, admin = platform.token("cara4"), platform.admin_token()
    add_member(platform, "lapsed4", "cara4", "membership removal")
    # Given cara's experiment in lapsed4, whose runs she has just searched (the cache is warm)
    r = call(platform, cara, "POST", "experiments/create",
             json={"name": "lapsed4-exp", "tags": [{"key": "mlops.project",
                                                     "value": "lapsed4"}]})
    assert r.status_code == 200, r.text
    exp = r.json()["experiment_id"]
    search = {"json": {"experiment_ids": [exp], "max_results": 10}}
    assert call(platform, cara, "POST", "runs/search", **search).status_code == 200

    # When an administrator removes her from the project
    r = platform.api("DELETE", "services/mlops/api/projects/lapsed4/members/cara4", admin)
    assert r.status_code == 200, r.text

    # Then her searches answer "does not exist" within the cache's lifetime (and some slack
    # for a loaded machine), and stay so
    until(lambda: call(platform, cara, "POST", "runs/search", **search).status_code == 404,
          timeout=10, what="a removed member's search refused")
    r = call(platform, cara, "GET", "experiments/get", params={"experiment_id": exp})
    assert r.status_code == 404, r.text
