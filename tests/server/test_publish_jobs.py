"""The server extension's publish jobs: bounded in how many run at once and how many finished
ones it remembers, and one set per server (its settings), not per process."""
from __future__ import annotations

import threading

from traitlets.config import Config

from jupyter_mlops.core.errors import Forbidden
from jupyter_mlops.server.dataset_workspace import PublishJobs, workspace_state
from jupyter_mlops.server.settings import MlopsSettings
from tests.fixtures import until


def test_publishes_wait_their_turn_and_only_the_latest_finished_are_kept():
    jobs = PublishJobs(at_once=1, kept=2)
    release = threading.Event()

    def slow(progress):
        progress("hashing", 1, 2, 10)
        release.wait(10)
        return {"version": "v1"}

    first, second = jobs.start("ann", slow), jobs.start("ann", slow)
    until(lambda: first["phase"] == "hashing", 10, "the first publish hashing")
    assert second["phase"] == "queued" and second["state"] == "running"
    release.set()
    until(lambda: second["state"] == "done", 10, "the second publish done")

    def refused(progress):
        raise Forbidden("not a member of project secret")

    failed = [jobs.start("ann", refused) for _ in range(3)]
    until(lambda: all(j["state"] == "failed" for j in failed), 10, "refused publishes failed")
    assert failed[-1]["error"] == "not a member of project secret"
    assert failed[-1]["status"] == 403
    jobs.start("ann", refused)  # a start forgets the oldest finished beyond `kept`
    assert first["id"] not in jobs.jobs and second["id"] not in jobs.jobs
    assert len([j for j in jobs.jobs.values() if j["state"] != "running"]) <= 3


def test_each_server_has_its_own_jobs_configured_by_its_settings():
    config = Config()
    config.DatasetsConfig.publishes_kept = 7
    one, two = MlopsSettings(config=config), MlopsSettings(config=config)
    assert workspace_state(one) is workspace_state(one)
    assert workspace_state(one)[2] is not workspace_state(two)[2]
    assert workspace_state(one)[2].kept == 7
