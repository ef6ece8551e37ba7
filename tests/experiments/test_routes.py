"""The experiments and models routes of the server extension against a real MLflow server."""
from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from tornado.httpclient import HTTPClientError

# Coroutine tests run on pytest-jupyter's loop (its hook), not pytest-asyncio's.


async def get(jp_fetch, *path, **params):
    resp = await jp_fetch("mlops", "api", *path, params=params or None)
    return json.loads(resp.body)


async def assert_error(call, status: int, *fragments: str) -> dict:
    with pytest.raises(HTTPClientError) as info:
        await call
    assert info.value.code == status, info.value.response.body
    body = json.loads(info.value.response.body)
    for f in fragments:
        assert f in body["message"], body
    return body


async def test_experiments_are_listed_with_their_project(jp_fetch, seeded):
    # When the lab lists experiments
    body = await get(jp_fetch, "experiments")
    # Then both seeded experiments come with their project and a link into the MLflow UI
    by_name = {e["name"]: e for e in body["experiments"]}
    assert {"cells", "small"} <= set(by_name)
    assert by_name["cells"]["project"] == "default"
    assert by_name["cells"]["ui_url"] == f"/services/mlflow/#/experiments/{seeded['big']}"


async def test_runs_page_through_with_tokens(jp_fetch, seeded):
    # Given 120 runs, when the table pages through them 50 at a time
    seen, token, pages = [], None, 0
    while True:
        params = {"max_results": "50", "order_by": "attributes.run_name ASC"}
        if token:
            params["page_token"] = token
        body = await get(jp_fetch, "experiments", seeded["big"], "runs", **params)
        seen += [r["run_id"] for r in body["runs"]]
        pages += 1
        token = body["next_page_token"]
        if not token:
            break
    # Then three pages cover every run exactly once, in the requested order
    assert pages == 3
    assert sorted(seen) == sorted(seeded["big_runs"]) and len(set(seen)) == 120
    first = await get(jp_fetch, "experiments", seeded["big"], "runs", max_results="3",
                      order_by="attributes.run_name ASC")
    assert [r["run_name"] for r in first["runs"]] == ["run-00000", "run-00001", "run-00002"]
    assert first["metric_keys"] == ["m0", "m1", "m2"] and first["param_keys"] == ["p0", "p1", "p2"]
    assert first["runs"][0]["user"] == "alice"
    assert first["runs"][0]["ui_url"] == (
        f"/services/mlflow/#/experiments/{seeded['big']}/runs/{first['runs'][0]['run_id']}")


async def test_filter_and_order_use_mlflow_search_syntax(jp_fetch, seeded):
    body = await get(jp_fetch, "experiments", seeded["big"], "runs",
                     filter="params.p0 = '3'", order_by="metrics.m0 DESC", max_results="1000")
    assert body["runs"] and all(r["params"]["p0"] == "3" for r in body["runs"])
    values = [r["metrics"]["m0"] for r in body["runs"]]
    assert values == sorted(values, reverse=True)
    assert len(body["runs"]) == sum(1 for i in range(120) if i % 7 == 3)


async def test_malformed_filter_is_400_with_mlflows_reason(jp_fetch, seeded):
    body = await assert_error(
        jp_fetch("mlops", "api", "experiments", seeded["big"], "runs",
                 params={"filter": "metrics.m0 >>> 1"}), 400, "tracking server:")
    assert "filter" in body["message"].lower() or "invalid" in body["message"].lower()
    await assert_error(jp_fetch("mlops", "api", "experiments", seeded["big"], "runs",
                                params={"max_results": "0"}), 400, "max_results")


async def test_run_detail_has_params_metrics_git_and_artifacts(jp_fetch, seeded):
    run_id = seeded["small_runs"][0]
    body = await get(jp_fetch, "runs", run_id)
    assert body["params"] == {"p0": "0", "p1": "1", "p2": "2"}
    assert set(body["metrics"]) == {"m0", "m1"}
    assert body["git"]["commit"] == f"{0:040x}"
    assert {a["path"] for a in body["artifacts"]} == {"model", "notes.txt", "images"}
    assert body["ui_url"].endswith(f"/experiments/{seeded['small']}/runs/{run_id}")
    # artifacts: a listing and inline previews with the right types
    listing = await get(jp_fetch, "runs", run_id, "artifacts", path="images")
    assert [f["path"] for f in listing["files"]] == ["images/sample.png"]
    png = await jp_fetch("mlops", "api", "runs", run_id, "artifact",
                         params={"path": "images/sample.png"})
    assert png.headers["Content-Type"] == "image/png" and png.body[:4] == b"\x89PNG"
    txt = await jp_fetch("mlops", "api", "runs", run_id, "artifact", params={"path": "notes.txt"})
    assert txt.body == b"cells detected: 42\n" and txt.headers["Content-Type"].startswith("text/")
    await assert_error(jp_fetch("mlops", "api", "runs", run_id, "artifact",
                                params={"path": "../x"}), 400, "relative")


async def test_unknown_run_is_404(jp_fetch, seeded):
    await assert_error(jp_fetch("mlops", "api", "runs", "0" * 32), 404, "tracking server")


async def test_compare_two_runs(jp_fetch, seeded):
    a, b = seeded["small_runs"][:2]
    body = await get(jp_fetch, "runs", "compare", run_ids=f"{a},{b}")
    assert [r["run_id"] for r in body["runs"]] == [a, b]
    assert body["differing_params"] == ["p0", "p1", "p2"]
    assert set(body["histories"]) == {"m0", "m1"}
    assert [p[0] for p in body["histories"]["m0"][a]] == list(range(10))
    await assert_error(jp_fetch("mlops", "api", "runs", "compare", params={"run_ids": a}),
                       400, "compare 2 to 10")
    await assert_error(jp_fetch("mlops", "api", "runs", "compare",
                                params={"run_ids": f"{a},{b}", "metrics": "nope"}), 400, "nope")


async def test_register_a_run_artifact_and_move_an_alias(jp_fetch, seeded):
    run_id = seeded["small_runs"][0]
    # Given a run whose artifacts hold a model directory, when it is registered twice
    for expected in ("1", "2"):
        resp = await jp_fetch("mlops", "api", "models", "register", method="POST",
                              body=json.dumps({"run_id": run_id, "path": "model",
                                               "name": "cell-detector"}))
        version = json.loads(resp.body)
        assert resp.code == 201 and version["version"] == expected
        assert version["run_id"] == run_id and version["source"].endswith("/artifacts/model")
    # When "champion" is set on version 1 and then moved to version 2
    for v in ("1", "2"):
        resp = await jp_fetch("mlops", "api", "models", "cell-detector", "aliases", "champion",
                              method="PUT", body=json.dumps({"version": v}))
        assert json.loads(resp.body)["aliases"] == {"champion": v}
    # Then the versions list shows the alias on version 2 only, with the source run
    body = await get(jp_fetch, "models", "cell-detector", "versions")
    assert [(v["version"], v["aliases"]) for v in body["versions"]] == [
        ("2", ["champion"]), ("1", [])]
    models = await get(jp_fetch, "models")
    assert any(m["name"] == "cell-detector" and m["latest_version"] == 2
               for m in models["models"])
    # A directory without an MLmodel file is refused, with the reason
    await assert_error(jp_fetch("mlops", "api", "models", "register", method="POST",
                                body=json.dumps({"run_id": run_id, "path": "images",
                                                 "name": "x"})), 400, "no MLmodel")
    await assert_error(jp_fetch("mlops", "api", "models", "register", method="POST",
                                body=json.dumps({"run_id": run_id})), 400, "'name'")
    resp = await jp_fetch("mlops", "api", "models", quote("cell-detector"), "aliases",
                          "champion", method="DELETE")
    assert resp.code == 204


async def test_mlflow_down_is_503_then_recovers(jp_fetch, jp_serverapp, seeded):
    settings = jp_serverapp.web_app.settings
    # Given the extension pointed at a port where nothing listens
    from .mlflow_server import free_port

    mlops = next(h[2]["settings"] for h in _handlers(jp_serverapp) if "settings" in h[2])
    good = mlops.mlflow_url
    mlops.mlflow_url = f"http://127.0.0.1:{free_port()}"
    try:
        await assert_error(jp_fetch("mlops", "api", "experiments"), 503,
                           "tracking server unreachable")
    finally:
        mlops.mlflow_url = good
    assert settings is not None
    assert (await get(jp_fetch, "experiments"))["experiments"]


def _handlers(serverapp):
    for rule in serverapp.web_app.default_router.rules:
        for r in getattr(rule.target, "rules", []):
            if r.target_kwargs:
                yield (r.matcher, r.target, r.target_kwargs)
