"""Deploy approvals on the hub's pages (the admin page and ``/approvals``), through the real
proxy with browser-like OAuth sessions and xsrf tokens, over a real model server.

People (own names: the session platform is shared): apm manages project ``appr`` (group
mlops-pms), ads is a data scientist in it, opm is a project manager of another project.
"""
from __future__ import annotations

import re

import pytest

from tests.deployments.test_endpoints import wait_status

API = "services/mlops/api"
PAGES = "services/mlops"
PASSWORD = "approve-me-42"


@pytest.fixture(scope="module")
def people(platform, registry):
    sessions = {"apm": platform.add_user("apm", PASSWORD, groups=["mlops-pms"]),
                "opm": platform.add_user("opm", PASSWORD, groups=["mlops-pms"]),
                "ads": platform.add_user("ads", PASSWORD)}
    tokens = {u: platform.token(u) for u in sessions}
    r = platform.api("POST", f"{API}/projects", tokens["apm"],
                     json={"name": "appr", "members": ["ads"]})
    assert r.status_code in (201, 409), r.text
    yield tokens, sessions
    platform.api("DELETE", f"{API}/deployments/appr-lr", platform.admin_token())


def xsrf_of(page: str) -> str:
    return re.search(r'<meta name="xsrf-token" content="([^"]+)"', page).group(1)


def page(platform, session, path="approvals"):
    r = session.get(f"{platform.url}/{PAGES}/{path}")
    assert r.status_code == 200, (r.status_code, r.url, r.text[:300])
    return r.text


def post(platform, session, path, data):
    return session.post(f"{platform.url}/{PAGES}/{path}", data=data)


def test_policy_toggle_needs_xsrf_and_a_manager(platform, people):
    tokens, sessions = people
    apm = sessions["apm"]
    html = page(platform, apm)
    # Given apm manages appr, the page offers the toggle of appr, switched off
    row = re.search(r'<tr data-policy="appr">.*?</tr>', html, re.S).group(0)
    assert 'name="require_approval"' in row and "checked" not in row
    data = {"project": "appr", "require_approval": "on", "back": "approvals"}
    # Without the xsrf token the cookie is not accepted: nothing changes
    r = apm.post(f"{platform.url}/{PAGES}/approvals/policy", data=data, allow_redirects=False)
    assert r.status_code in (401, 403), r.status_code
    policy = platform.api("GET", f"{API}/deployment-policies/appr", tokens["apm"]).json()
    assert policy["require_approval"] is False
    # A data scientist of the project cannot switch it on
    ads = sessions["ads"]
    r = post(platform, ads, "approvals/policy", {**data, "_xsrf": xsrf_of(page(platform, ads))})
    assert r.status_code == 403
    assert 'data-policy="appr"' not in page(platform, ads)
    # With the token, the manager can
    r = post(platform, apm, "approvals/policy", {**data, "_xsrf": xsrf_of(html)})
    assert r.status_code == 200 and "now wait for a manager" in r.text
    assert re.search(r'<tr data-policy="appr">.*?checked.*?</tr>', r.text, re.S)
    policy = platform.api("GET", f"{API}/deployment-policies/appr", tokens["apm"]).json()
    assert policy["require_approval"] is True


def test_pending_deploy_is_approved_on_the_page(platform, people, registry):
    tokens, sessions = people
    # Given ads deploys in appr, the deploy waits
    r = platform.api("POST", f"{API}/deployments", tokens["ads"], json={
        "name": "appr-lr", "model_name": "lr", "version": 1, "project": "appr"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending_approval"
    # Then apm sees it with Approve / Reject; opm (another project's manager) does not
    html = page(platform, sessions["apm"])
    row = re.search(r'<tr data-pending="appr-lr">.*?</tr>', html, re.S).group(0)
    assert "lr v1" in row and "ads" in row and "Approve" in row and "Reject" in row
    opm_html = page(platform, sessions["opm"])
    assert "appr-lr" not in opm_html
    # and neither opm nor ads can decide it (the form answers their status, no change)
    for who in ("opm", "ads"):
        s = sessions[who]
        r = post(platform, s, "approvals/decide", {"deployment": "appr-lr",
                                                  "decision": "approve", "back": "approvals",
                                                  "_xsrf": xsrf_of(page(platform, s))})
        assert r.status_code in (403, 404), (who, r.status_code)
    assert platform.api("GET", f"{API}/deployments/appr-lr",
                        tokens["ads"]).json()["status"] == "pending_approval"
    # When apm approves, the model server starts and serves
    r = post(platform, sessions["apm"], "approvals/decide", {
        "deployment": "appr-lr", "decision": "approve", "back": "approvals",
        "_xsrf": xsrf_of(html)})
    assert r.status_code == 200 and "deployment appr-lr approved" in r.text
    assert 'data-pending="appr-lr"' not in r.text
    dep = wait_status(platform, tokens["ads"], "appr-lr", {"ready", "failed"})
    assert dep["status"] == "ready" and dep["serving_version"] == "1", dep
    events = platform.api("GET", f"{API}/deployments/appr-lr/events", tokens["ads"]).json()
    assert [e["actor"] for e in events["events"] if e["action"] == "approved"] == ["apm"]
    # Approving twice is a message on the page, not an error page
    r = post(platform, sessions["apm"], "approvals/decide", {
        "deployment": "appr-lr", "decision": "approve", "back": "approvals",
        "_xsrf": xsrf_of(html)})
    assert r.status_code == 200 and "not waiting for approval" in r.text


def test_switch_is_rejected_on_the_admin_page(platform, people):
    tokens, sessions = people
    # Given ads asks to switch to v2, v1 keeps serving while it waits
    r = platform.api("PATCH", f"{API}/deployments/appr-lr", tokens["ads"], json={"version": 2})
    assert r.status_code == 200 and r.json()["status"] == "pending_approval", r.text
    # The administrator sees it on the admin page, with the policy of every project
    admin = platform.login("admin", platform.admin_password)
    html = page(platform, admin, "admin")
    section = re.search(r'id="deploy-approvals".*?</section>', html, re.S).group(0)
    assert re.search(r'<tr data-policy="appr">.*?checked.*?</tr>', section, re.S)
    assert 'data-policy="default"' in section
    row = re.search(r'<tr data-pending="appr-lr">.*?</tr>', section, re.S).group(0)
    assert "lr v2" in row and "v1" in row
    # When the administrator rejects it with a reason, v1 serves on and the reason is kept
    r = post(platform, admin, "approvals/decide", {
        "deployment": "appr-lr", "decision": "reject", "reason": "v2 flips every label",
        "back": "admin", "_xsrf": xsrf_of(html)})
    assert r.status_code == 200 and "deployment appr-lr rejected" in r.text
    assert "/services/mlops/admin" in r.url
    dep = platform.api("GET", f"{API}/deployments/appr-lr", tokens["ads"]).json()
    assert dep["status"] == "ready" and dep["model_version"] == dep["serving_version"] == "1"
    assert "v2 flips every label" in dep["message"]
    # Bad form input is a message, not a crash
    r = post(platform, admin, "approvals/decide", {
        "deployment": "appr-lr", "decision": "maybe", "back": "admin",
        "_xsrf": xsrf_of(html)})
    assert r.status_code == 400 and "approve" in r.text
