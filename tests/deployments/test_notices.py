"""Deploy approvals as lab notifications, on the real platform: the project's manager hears of
a deploy waiting for them, the data scientist hears the decision; nobody else hears anything.
(Rejecting starts no model server: the test stays quick.)

People (own names: the session platform is shared): npm manages project ``ntc`` (group
mlops-pms), nds is a data scientist in it, nox is a data scientist outside it.
"""
from __future__ import annotations

from tests.fixtures import until

from .conftest import project_with_people

API = "services/mlops/api"
PASSWORD = "notice-me-42"


def feed(platform, token, since=0):
    r = platform.api("GET", f"{API}/notifications?since={since}", token)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_deploy_waiting_for_approval_and_its_rejection_reach_the_right_people(
        platform, registry):
    people = project_with_people(platform, "ntc", PASSWORD, "npm", ("nds",), ("nox",))
    npm, nds, nox = (people[u] for u in ("npm", "nds", "nox"))
    r = platform.api("PUT", f"{API}/deployment-policies/ntc", npm,
                     json={"require_approval": True})
    assert r.status_code == 200, r.text
    marks = {who: feed(platform, t)["last_id"] for who, t in
             (("npm", npm), ("nds", nds), ("nox", nox))}
    # When nds deploys in ntc, the deploy waits for a manager
    r = platform.api("POST", f"{API}/deployments", nds, json={
        "name": "ntc-lr", "model_name": "lr", "version": 1, "project": "ntc"})
    assert r.status_code == 201 and r.json()["status"] == "pending_approval", r.text
    try:
        # Then npm is told, with a link to the approvals page
        [asked] = until(lambda: feed(platform, npm, marks["npm"])["notifications"], 30,
                        "npm's approval notification")
        assert asked["kind"] == "approval.requested" and asked["level"] == "warning"
        assert "nds asks to deploy version 1 of ntc-lr in project ntc" in asked["message"]
        assert asked["link"].endswith("/services/mlops/approvals")
        # When npm rejects it, nds is told why
        r = platform.api("POST", f"{API}/deployments/ntc-lr/reject", npm,
                         json={"reason": "use version 2"})
        assert r.status_code == 200, r.text
        [told] = until(lambda: feed(platform, nds, marks["nds"])["notifications"], 30,
                       "nds's rejection notification")
        assert told["kind"] == "deployment.rejected"
        assert told["message"] == "npm rejected version 1 of your deployment ntc-lr: use version 2"
        assert told["link"] == "mlops:deployments/ntc-lr"
        # and nox, outside the project, heard nothing of it
        assert feed(platform, nox, marks["nox"])["notifications"] == []
    finally:
        platform.api("DELETE", f"{API}/deployments/ntc-lr", nds)
