"""GPU-hours for everyone on a real running platform: a data scientist sees their own, a project
manager their project's, an administrator everything, also as CSV."""
from __future__ import annotations

import csv
import io

import pytest

API = "/services/mlops/api"
PM, DS = "pilar", "quim"  # unique across test modules
PROJECT = "pilar-cells"


@pytest.fixture(scope="module")
def tokens(platform):
    platform.add_user(PM, "pilar-pass-1", groups=["mlops-pms"])
    platform.add_user(DS, "quim-pass-1")
    t = {PM: platform.token(PM), DS: platform.token(DS), "admin": platform.admin_token()}
    r = platform.api("POST", f"{API}/projects", t[PM], json={"name": PROJECT})
    assert r.status_code in (201, 409), r.text
    # quim used a GPU in pilar's project, and one outside it; pilar one in her own (server
    # sessions recorded by events; the next reconciliation ends them, having held no device)
    for owner, user, project in (("usage-q1", DS, PROJECT), ("usage-q2", DS, "default"),
                                 ("usage-p1", PM, PROJECT)):
        r = platform.api("POST", f"{API}/admin/usage/events", t["admin"], json={
            "event": "started", "owner_kind": "server", "owner": owner, "user": user,
            "gpus": 1, "project": project})
        assert r.status_code == 201, r.text
    return t


def usage(platform, token, **params):
    r = platform.api("GET", f"{API}/usage", token, params=params)
    assert r.status_code == 200, r.text
    return r


def test_data_scientist_sees_own_hours_by_project_only(platform, tokens):
    mine = usage(platform, tokens[DS]).json()
    assert mine["user"] == DS and set(mine["mine"]["by_project"]) >= {PROJECT, "default"}
    assert mine["mine"]["30d"] >= mine["mine"]["7d"] >= 0 and mine["projects"] == {}
    assert {r["user"] for r in mine["rows"]} == {DS}
    text = usage(platform, tokens[DS], format="csv").text
    assert text.startswith("user,project,gpu_hours_7d,gpu_hours_30d\n")
    assert {x["user"] for x in csv.DictReader(io.StringIO(text))} == {DS}


def test_manager_sees_her_project_by_member_and_admin_everything_as_csv(platform, tokens):
    pm = usage(platform, tokens[PM]).json()
    assert set(pm["projects"][PROJECT]["by_user"]) == {PM, DS}
    # not quim's hours outside her project
    assert {(r["user"], r["project"]) for r in pm["rows"]} == {(PM, PROJECT), (DS, PROJECT)}
    r = usage(platform, tokens["admin"], format="csv")
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {(x["user"], x["project"]) for x in rows} >= {(DS, PROJECT), (DS, "default"),
                                                         (PM, PROJECT)}
    assert all(float(x["gpu_hours_30d"]) >= float(x["gpu_hours_7d"]) >= 0 for x in rows)


def test_the_labs_export_is_labelled_csv(platform, tokens):
    """The lab's link goes through the server extension, whose JSON base class would otherwise
    label the CSV as JSON (a browser then shows it instead of saving gpu-hours.csv)."""
    platform.start_server(DS)
    r = platform.api("GET", f"/user/{DS}/mlops/api/usage", tokens[DS], params={"format": "csv"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.text.startswith("user,project,gpu_hours_7d,gpu_hours_30d\n")
