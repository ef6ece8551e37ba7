"""The audit log of a name reused after an undeploy: each project reads the lifetime it held,
never the other's (core ``Deployments`` over a real database; model servers never start)."""
from __future__ import annotations

import asyncio

import pytest

from jupyter_mlops.core.db import Database
from jupyter_mlops.core.deployments import Deployments
from jupyter_mlops.core.errors import NotFound
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import MANAGE, USE, Caller


class ParkedServers:
    """A backend whose servers never become ready: rollouts wait until they are cancelled."""

    async def start(self, deployment, version, model_uri):
        await asyncio.Event().wait()

    async def stop(self, instance):
        pass

    async def alive(self, instance):
        return False

    def url(self, instance):
        return "http://unused"

    def replicas(self, instance):
        return 0


class Registry:
    async def resolve(self, model_name, version):
        return f"models:/{model_name}/{version}"


@pytest.mark.asyncio
async def test_a_reused_name_keeps_each_lifetimes_log_to_its_project(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'cp.sqlite'}")
    projects = Projects(db)
    pm = Caller("pm", scopes=frozenset({USE, MANAGE}))
    alice, bob = (Caller(n, scopes=frozenset({USE})) for n in ("alice", "bob"))
    projects.create(pm, "north", members=["alice"])
    projects.create(pm, "south", members=["bob"])
    deployments = Deployments(db, projects, ParkedServers(), Registry())
    try:
        await deployments.create(alice, "shared-name", "lr", "1", project="north")
        await deployments.delete(alice, "shared-name")
        await deployments.create(bob, "shared-name", "lr", "2", project="south")
        # alice reads the lifetime her project held (the live one is south's, not hers)
        mine = deployments.events(alice, "shared-name")
        assert [(e["actor"], e["action"]) for e in mine] == [("alice", "created"),
                                                             ("alice", "deleted")]
        assert "north" in mine[0]["detail"]
        # bob reads only the live one
        assert [(e["actor"], e["action"]) for e in deployments.events(bob, "shared-name")] == [
            ("bob", "created")]
        # someone in neither project reads nothing
        with pytest.raises(NotFound):
            deployments.events(Caller("carol", scopes=frozenset({USE})), "shared-name")
    finally:
        await deployments.close()
        db.dispose()
