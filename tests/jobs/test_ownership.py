"""Cancelling someone else's job in a private project, through the real platform: refused
for a member with the reason, allowed for the project's manager and, once the project allows
it, for a member; the owner sees who cancelled. Someone outside the project sees nothing."""
from __future__ import annotations

from .conftest import API, wait_job

PASSWORD = "job-owners-1"
PROJECT = "kiln"

SLOW = """
import time
for _ in range(600):
    time.sleep(0.1)
"""


def _submit(platform, token, user):
    ws = platform.data_dir / "users" / user
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "slow_owned.py").write_text(SLOW)
    r = platform.api("POST", f"{API}/jobs", token, json={"path": "slow_owned.py",
                                                         "project": PROJECT})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_only_owner_manager_or_allowed_members_cancel_a_job(platform, mlflow_access):
    platform.add_user("kim", PASSWORD, groups=["mlops-pms"])
    for u in ("ola", "per", "ula"):
        platform.add_user(u, PASSWORD)
    kim, ola, per, ula = (platform.token(u) for u in ("kim", "ola", "per", "ula"))
    r = platform.api("POST", f"{API}/projects", kim, json={"name": PROJECT,
                                                           "members": ["ola", "per"]})
    assert r.status_code in (201, 409), r.text
    first = _submit(platform, ola, "ola")
    # ula (not in the project) does not see ola's job at all
    assert platform.api("GET", f"{API}/jobs/{first}", ula).status_code == 404
    assert platform.api("POST", f"{API}/jobs/{first}/cancel", ula).status_code == 404
    # per (a member) reads it but may not cancel it
    assert platform.api("GET", f"{API}/jobs/{first}", per).status_code == 200
    r = platform.api("POST", f"{API}/jobs/{first}/cancel", per)
    assert r.status_code == 403 and "belongs to ola" in r.json()["message"], r.text
    # kim, the project's manager, may
    r = platform.api("POST", f"{API}/jobs/{first}/cancel", kim)
    assert r.status_code == 200, r.text
    done = wait_job(platform, ola, first, ("cancelled",))
    assert [(c["actor"], c["by_other"]) for c in done["changes"]] == [("kim", True)]
    # with the project's setting on, per may cancel ola's next job; ola sees it was him
    r = platform.api("PATCH", f"{API}/projects/{PROJECT}", kim,
                     json={"members_change_others_work": True})
    assert r.status_code == 200, r.text
    second = _submit(platform, ola, "ola")
    r = platform.api("POST", f"{API}/jobs/{second}/cancel", per)
    assert r.status_code == 200, r.text
    done = wait_job(platform, ola, second, ("cancelled",))
    assert [(c["actor"], c["action"], c["by_other"]) for c in done["changes"]] == [
        ("per", "cancelled", True)]
