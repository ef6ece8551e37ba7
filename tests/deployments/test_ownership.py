"""A deployment belongs to its creator: in a private project, a member who is not its owner
reads it but may not switch it, mint its client tokens or undeploy it; the project's manager
may, and so may members once the project allows it. The owner sees every change someone else
made in the audit log, which stays readable by the project after the undeploy. Real platform,
real registry, a real model server."""
from __future__ import annotations

import pytest

from .conftest import API, deploy_ready, project_with_people

PASSWORD = "deploy-owners-1"
PROJECT = "atrium"
NAME = "atrium-lr"


@pytest.fixture(scope="module")
def people(platform):
    return project_with_people(platform, PROJECT, PASSWORD, "nia", ("otto", "ray"), ("sig",))


def test_only_owner_manager_or_allowed_members_change_a_deployment(platform, registry, people):
    otto, ray, nia, sig = (people[u] for u in ("otto", "ray", "nia", "sig"))
    deploy_ready(platform, otto, NAME, "lr", 1, project=PROJECT)
    # ray, a member, reads it ...
    assert platform.api("GET", f"{API}/{NAME}", ray).status_code == 200
    # ... but may not switch it, mint a client token for it or undeploy it
    for r in (platform.api("PATCH", f"{API}/{NAME}", ray, json={"version": 2}),
              platform.api("POST", f"{API}/{NAME}/tokens", ray, json={"note": "mine"}),
              platform.api("DELETE", f"{API}/{NAME}", ray)):
        assert r.status_code == 403, r.text
        assert "belongs to otto" in r.json()["message"], r.text
    assert platform.api("GET", f"{API}/{NAME}", ray).json()["model_version"] == "1"
    # sig, outside the project, does not see it
    assert platform.api("GET", f"{API}/{NAME}", sig).status_code == 404
    assert platform.api("DELETE", f"{API}/{NAME}", sig).status_code == 404
    # nia, the project's manager, may mint a token
    r = platform.api("POST", f"{API}/{NAME}/tokens", nia, json={"note": "for the robot"})
    assert r.status_code == 201, r.text
    # with "members may change each other's work" on, ray may undeploy it
    r = platform.api("PATCH", f"services/mlops/api/projects/{PROJECT}", nia,
                     json={"members_change_others_work": True})
    assert r.status_code == 200, r.text
    assert platform.api("DELETE", f"{API}/{NAME}", ray).status_code == 204
    assert platform.api("GET", f"{API}/{NAME}", otto).status_code == 404
    # the audit log outlives it: otto reads who did what to his deployment
    r = platform.api("GET", f"{API}/{NAME}/events", otto)
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert [(e["actor"], e["action"]) for e in events if e["by_other"]] == [
        ("nia", "token_created"), ("ray", "deleted")], events
    assert events[0]["action"] == "created" and not events[0]["by_other"]
    # and still nobody outside the project
    assert platform.api("GET", f"{API}/{NAME}/events", sig).status_code == 404
