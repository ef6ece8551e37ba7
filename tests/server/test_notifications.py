"""The lab's notification feed: its rules (core), what the platform tells whom (core.notices),
and the routes of the control plane and the server extension on the real platform.

People (own names: the session platform is shared): nell runs a job, noor is another user.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from jupyter_mlops.core import notices, roles
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.errors import InvalidInput, NotFound
from jupyter_mlops.core.jobs.model import Job, JobSpec
from jupyter_mlops.core.notifications import Notifications
from jupyter_mlops.core.roles import Caller
from tests.fixtures import until

API = "services/mlops/api"
PASSWORD = "bell-rings-7"


def who(name: str) -> Caller:
    return Caller(name=name, scopes=frozenset({roles.USE}))


@pytest.fixture
def feed(tmp_path):
    return Notifications(Database(f"sqlite:///{tmp_path / 'n.sqlite'}"), keep_per_user=3)


def test_each_person_reads_and_marks_only_their_own(feed):
    # Given one event told to two people and one to a third
    both = feed.notify(["ann", "ben", "ann", ""], "job.failed", " Job 1 failed ",
                       link="mlops:jobs/1")
    feed.notify(["cy"], "job.succeeded", "Job 2 succeeded")
    assert [n.user for n in both] == ["ann", "ben"] and both[0].message == "Job 1 failed"
    assert both[0].level == "warning"
    # Then each reads their own only, with a cursor that only grows
    ann = feed.list(who("ann"))
    assert [n["message"] for n in ann["notifications"]] == ["Job 1 failed"]
    assert ann["unread"] == 1 and ann["last_id"] == both[0].id
    assert feed.list(who("ann"), since=ann["last_id"])["notifications"] == []
    # and marks only their own read: another person's id is absent
    with pytest.raises(NotFound):
        feed.mark_read(who("cy"), both[0].id)
    assert feed.mark_read(who("ann"), both[0].id).read is True
    assert feed.list(who("ann"))["unread"] == 0 and feed.list(who("ben"))["unread"] == 1


def test_the_feed_is_bounded_and_refuses_bad_entries_whole(feed):
    for i in range(5):
        feed.notify(["ann"], "sweep.succeeded", f"sweep {i}")
    kept = feed.list(who("ann"))["notifications"]
    assert [n["message"] for n in kept] == ["sweep 2", "sweep 3", "sweep 4"]
    for users, kind, message, link in [
        ("ann", "job.failed", "x", None),  # one string, not a list
        (["ann"], "Job Failed!", "x", None),
        (["ann"], "job.failed", "   ", None),
        (["ann"], "job.failed", "x", "javascript:alert(1)"),
        (["ann"], "job.failed", "x", "//evil.example/x"),
    ]:
        with pytest.raises(InvalidInput):
            feed.notify(users, kind, message, link=link)
    assert len(feed.list(who("ann"))["notifications"]) == 3  # nothing half-written


def test_who_hears_what(tmp_path):
    feed = Notifications(Database(f"sqlite:///{tmp_path / 'w.sqlite'}"))

    def job(**kw):
        base = dict(id=7, user="ann", spec=JobSpec(path="train.py"), state="succeeded")
        return Job(**{**base, **kw})

    notices.job_ended(feed.notify, job())
    notices.job_ended(feed.notify, job(id=8, state="failed", reason="exit code 1"))
    notices.job_ended(feed.notify, job(id=9, state="cancelled"))  # her own cancel: silent
    notices.job_ended(feed.notify, job(id=10, sweep_id=1))  # a trial: the sweep says it
    notices.job_ended(feed.notify, job(id=11, state="cancelled", changes=[
        {"actor": "pia", "action": "cancelled", "by_other": True}]))
    notices.group_ended(feed.notify, "sweep", {"id": 3, "user": "ann", "state": "succeeded",
                                               "metric": "map50",
                                               "best": {"value": 0.81234, "number": 4}})
    got = [(n["kind"], n["message"], n["link"]) for n in
           feed.list(who("ann"))["notifications"]]
    assert got == [
        ("job.succeeded", "Job 7 (train.py) succeeded", "mlops:jobs/7"),
        ("job.failed", "Job 8 (train.py) failed: exit code 1", "mlops:jobs/8"),
        ("job.cancelled", "Job 11 (train.py) was stopped by pia", "mlops:jobs/11"),
        ("sweep.succeeded", "Sweep 3 succeeded: best map50 0.8123 (trial 4)",
         "mlops:sweeps/3"),
    ]
    # deployments: the owner hears of others' changes, managers of a request for approval
    event = dict(name="cells", owner="ann", version="3", project="lab",
                 managers=["mo", "ann"], approvals_link="/services/mlops/approvals")
    notices.deployment_event(feed.notify, actor="ann", action="switched", **event)  # herself
    notices.deployment_event(feed.notify, actor="mo", action="rejected", reason="too slow",
                             **event)
    notices.deployment_event(feed.notify, actor="ann", action="requested", **event)
    last = feed.list(who("ann"))["notifications"][-1]
    assert last["message"] == "mo rejected version 3 of your deployment cells: too slow"
    assert last["link"] == "mlops:deployments/cells"
    mo = feed.list(who("mo"))["notifications"]
    assert [n["kind"] for n in mo] == ["approval.requested"]
    assert mo[0]["link"] == "/services/mlops/approvals" and "ann asks" in mo[0]["message"]


def test_a_failing_feed_never_breaks_the_event():
    def broken(*a, **kw):
        raise RuntimeError("database gone")

    notices.job_ended(broken, SimpleNamespace(
        id=1, user="a", spec=JobSpec(path="x.py"), state="failed", reason="", changes=[],
        sweep_id=None, pipeline_id=None))


def test_a_finished_job_reaches_its_owner_in_the_lab_and_no_one_else(platform):
    platform.add_user("nell", PASSWORD)
    platform.add_user("noor", PASSWORD)
    nell, noor = platform.token("nell"), platform.token("noor")
    ws = platform.data_dir / "users" / "nell"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "bell.py").write_text("print('ding')\n")
    before = platform.api("GET", f"{API}/notifications", nell).json()["last_id"]
    # When nell's job ends
    r = platform.api("POST", f"{API}/jobs", nell, json={"path": "bell.py"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]

    def news():
        feed = platform.api("GET", f"{API}/notifications?since={before}", nell).json()
        return [n for n in feed["notifications"] if n["link"] == f"mlops:jobs/{job_id}"]

    # Then her feed tells her, with a link to the job
    note = until(news, 60, "the job's notification")[0]
    assert note["kind"] == "job.succeeded" and note["level"] == "info" and not note["read"]
    # noor's feed does not show it, and noor cannot mark it read (a valid request: 404)
    theirs = platform.api("GET", f"{API}/notifications", noor).json()["notifications"]
    assert note["id"] not in [n["id"] for n in theirs]
    r = platform.api("POST", f"{API}/notifications/{note['id']}/read", noor)
    assert r.status_code == 404 and r.json()["message"], r.text
    # The lab's server extension forwards her own feed with her own token
    platform.start_server("nell")
    lab = f"user/nell/mlops/api/notifications"
    r = platform.api("GET", f"{lab}?since={before}", nell)
    assert r.status_code == 200 and note["id"] in [n["id"] for n in r.json()["notifications"]]
    r = platform.api("POST", f"{lab}/{note['id']}/read", nell)
    assert r.status_code == 200 and r.json()["read"] is True
    # Bad input is a JSON 400 with the reason
    r = platform.api("GET", f"{API}/notifications?since=-1", nell)
    assert r.status_code == 400 and "since" in r.json()["message"]
