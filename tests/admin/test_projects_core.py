"""Projects in the control plane database: membership (by name and by group), managers,
quota ceilings, milestones, and the IdP-group mapping. Real SQLite, no web layer."""
from __future__ import annotations

import pytest

from jupyter_mlops.core import roles
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import Caller

ADMIN = Caller("ada", scopes=frozenset({roles.ADMIN, roles.MANAGE, roles.USE}))
PM = Caller("pat", scopes=frozenset({roles.MANAGE, roles.USE}))
PM2 = Caller("pia", scopes=frozenset({roles.MANAGE, roles.USE}))
SAM = Caller("sam", groups=("cells-team",), scopes=frozenset({roles.USE}))
DAN = Caller("dan", scopes=frozenset({roles.USE}))


@pytest.fixture
def projects(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'p.sqlite'}")
    yield Projects(db)
    db.dispose()


def test_default_project_holds_everyone(projects):
    assert [p.name for p in projects.list_for(DAN)] == ["default"]
    assert projects.require_member(DAN, "default").everyone


def test_manager_creates_adds_and_removes_members(projects):
    # Given a project manager's new project
    projects.create(PM, "cells", description="cell detection", members=["sam"])
    # Then its members see it and others get NotFound (never Forbidden: names do not leak)
    assert "cells" in [p.name for p in projects.list_for(SAM)]
    with pytest.raises(NotFound):
        projects.require_member(DAN, "cells")
    # When the manager adds dan and removes sam
    projects.add_member(PM, "cells", "dan")
    projects.remove_member(PM, "cells", "sam")
    assert {m["username"]: m["role"] for m in projects.members("cells")} == {
        "pat": "manager", "dan": "member"}
    with pytest.raises(NotFound):
        projects.require_member(SAM, "cells")
    # A member who is not a manager may not change members; another PM not in it sees nothing
    with pytest.raises(Forbidden):
        projects.add_member(DAN, "cells", "eve")
    with pytest.raises(NotFound):
        projects.add_member(PM2, "cells", "eve")


def test_data_scientist_cannot_create_and_bad_input_is_refused(projects):
    with pytest.raises(Forbidden):
        projects.create(SAM, "mine")
    for bad in ("", "Caps", "-x", "a" * 64, "sp ace", None):
        with pytest.raises(InvalidInput):
            projects.create(PM, bad)
    with pytest.raises(InvalidInput):
        projects.create(PM, "ok", gpu_quota=-1)
    with pytest.raises(InvalidInput):
        projects.create(PM, "ok", members=["bad name"])
    projects.create(PM, "ok")
    with pytest.raises(Conflict):
        projects.create(PM, "ok")


def test_quota_stays_within_the_administrators_ceiling(projects):
    projects.create(PM, "cells")
    with pytest.raises(Forbidden):
        projects.update(PM, "cells", gpu_quota_max=8)
    projects.update(ADMIN, "cells", gpu_quota_max=2)
    assert projects.update(PM, "cells", gpu_quota=2).gpu_quota == 2
    with pytest.raises(InvalidInput, match="above the 2 GPU"):
        projects.update(PM, "cells", gpu_quota=3)
    with pytest.raises(InvalidInput):
        projects.update(PM, "cells", colour="red")
    assert projects.get("cells").gpu_quota == 2


def test_groups_make_members_and_the_idp_mapping_creates_projects(projects):
    projects.apply_group_mapping({"cells-team": ["cells", "cells-archive"]})
    projects.apply_group_mapping({"cells-team": ["cells"]})  # idempotent at every start
    assert [p.name for p in projects.list_for(SAM)] == ["cells", "cells-archive", "default"]
    assert [p.name for p in projects.list_for(DAN)] == ["default"]
    # a project manager in the team's group manages the team's project; a scientist does not
    team_pm = Caller("tia", groups=("cells-team",), scopes=PM.scopes)
    assert projects.require_manager(team_pm, "cells").name == "cells"
    with pytest.raises(Forbidden):
        projects.require_manager(SAM, "cells")
    with pytest.raises(Forbidden):
        projects.require_manager(PM, "default")  # everyone's project: administrators only
    with pytest.raises(Forbidden):
        projects.set_groups(PM, "cells", ["x"])
    assert projects.set_groups(ADMIN, "cells", ["nuclei-team"]) == ["nuclei-team"]
    with pytest.raises(NotFound):
        projects.require_member(SAM, "cells")


def test_milestones(projects):
    projects.create(PM, "cells")
    m = projects.add_milestone(PM, "cells", "baseline model", "2026-12-01")
    projects.add_milestone(PM, "cells", "annotation done", "2026-11-30")
    assert [x.title for x in projects.milestones("cells")] == ["annotation done",
                                                               "baseline model"]
    assert projects.set_milestone(PM, "cells", m.id, True).done is True
    with pytest.raises(InvalidInput):
        projects.add_milestone(PM, "cells", "x", "next week")
    with pytest.raises(NotFound):
        projects.set_milestone(PM, "cells", 999, True)
    projects.delete_milestone(PM, "cells", m.id)
    assert len(projects.milestones("cells")) == 1
    detail = projects.detail(SAM if False else PM, "cells")
    assert detail["can_manage"] and detail["milestones"][0]["title"] == "annotation done"


def test_delete(projects):
    projects.create(PM, "tmp")
    with pytest.raises(Conflict):
        projects.delete(ADMIN, "default")
    projects.delete(PM, "tmp")
    assert projects.get("tmp") is None


def test_best_metric_over_time():
    from jupyter_mlops.core.project_progress import best_metric

    jobs = [
        {"id": 1, "finished_at": 100, "metrics": {"mAP": 0.41, "val_loss": 0.9}},
        {"id": 2, "finished_at": 300, "metrics": {"mAP": 0.38, "val_loss": 0.7}},
        {"id": 3, "finished_at": 200, "metrics": {"mAP": 0.52}},
        {"id": 4, "finished_at": None, "metrics": {"mAP": 0.99}},  # still running
    ]
    bm = best_metric(jobs)  # mAP: reported by most jobs; higher is better
    assert bm["name"] == "mAP" and bm["direction"] == "max"
    assert [(p["job"], p["value"]) for p in bm["points"]] == [(1, 0.41), (3, 0.52)]
    loss = best_metric(jobs, "val_loss")
    assert loss["direction"] == "min" and loss["best"] == {"at": 300, "value": 0.7, "job": 2}
    assert best_metric([]) is None


def test_progress_reads_jobs_through_the_job_store(projects):
    from jupyter_mlops.core.jobs.model import Job, JobSpec
    from jupyter_mlops.core.jobs.store import JobStore
    from jupyter_mlops.core.project_progress import ProjectProgress

    # Given two finished jobs and a queued one in "cells", and one job of another project
    projects.create(PM, "cells", members=["sam"])
    store = JobStore(projects.db)
    for n, (project, state, finished, metrics) in enumerate([
            ("cells", "succeeded", 100.0, {"val_loss": 0.9}),
            ("cells", "succeeded", 200.0, {"val_loss": 0.4}),
            ("cells", "queued", None, {}),
            ("default", "succeeded", 150.0, {"val_loss": 0.1})]):
        store.add(Job(id=0, user="sam", spec=JobSpec(path="train.py", project=project),
                      state=state, submitted_at=float(n), finished_at=finished,
                      metrics=metrics))
    progress = ProjectProgress(projects, jobs=store)
    # When a member reads the project's progress
    report = progress.report(SAM, "cells")
    # Then it counts and lists only this project's jobs, newest first, and its best metric
    assert report["jobs"]["by_state"] == {"succeeded": 2, "queued": 1}
    assert [j["id"] for j in report["jobs"]["recent"]] == [3, 2, 1]
    assert report["best_metric"]["best"] == {"at": 200.0, "value": 0.4, "job": 2}
    assert report["deployments"] is None and report["gpu_hours"] == {"7d": 0.0, "30d": 0.0}
    # and someone outside the project is told it does not exist
    with pytest.raises(NotFound):
        progress.report(DAN, "cells")
