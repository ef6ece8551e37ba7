"""The GPU allocator over a real SQLite database, as the hub and the control plane share it."""
from concurrent.futures import ThreadPoolExecutor

import pytest

from jupyter_mlops.core import roles
from jupyter_mlops.core.db import Database
from jupyter_mlops.core.projects import Projects
from jupyter_mlops.core.roles import Caller
from jupyter_mlops.core.errors import Conflict, InvalidInput, QuotaExceeded
from jupyter_mlops.core.gpu_allocation import GpuAllocator, NoGpuFree
from jupyter_mlops.core.gpus import StaticInventory

TWO = StaticInventory([{"name": "A100"}, {"name": "A100"}])


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'mlops.sqlite'}"


def test_two_gpus_three_users(url):
    alloc = GpuAllocator(Database(url), TWO)
    a = alloc.allocate("server", "alice", user="alice", count=1)
    b = alloc.allocate("server", "bob", user="bob", count=1)
    assert [g.index for g in a] == [0] and [g.index for g in b] == [1]
    with pytest.raises(NoGpuFree) as e:
        alloc.allocate("server", "carol", user="carol", count=1)
    assert e.value.status == 409
    assert "no GPU free: 1 asked for, 0 of 2 free" in e.value.message
    assert "server alice (1)" in e.value.message and "server bob (1)" in e.value.message
    assert alloc.availability() == {"total": 2, "free": 0, "reason": ""}
    assert alloc.release("server", "alice") == 1
    assert alloc.release("server", "alice") == 0
    c = alloc.allocate("server", "carol", user="carol", count=1)
    assert [g.index for g in c] == [0]


def test_state_survives_a_new_process_view(url):
    # A restarted hub builds a new allocator on the same database: nothing is handed out twice.
    GpuAllocator(Database(url), TWO).allocate("server", "alice", user="alice", count=1)
    again = GpuAllocator(Database(url), TWO)
    assert [a.owner for a in again.holders()] == ["alice"]
    assert [g.index for g in again.allocate("job", "7", user="bob", count=1)] == [1]
    # the same owner asking again (re-attach) gets its own device back
    assert [g.index for g in again.allocate("server", "alice", user="alice", count=1)] == [0]
    with pytest.raises(Conflict):
        again.allocate("server", "alice", user="alice", count=2)


def test_quotas_name_the_limit_and_use(url):
    alloc = GpuAllocator(Database(url), StaticInventory([{}] * 4))
    alloc.set_quota("user", "alice", 1)
    alloc.allocate("server", "alice", user="alice", count=1)
    with pytest.raises(QuotaExceeded) as e:
        alloc.allocate("job", "1", user="alice", count=1)
    assert e.value.message == "GPU quota of user alice is 1; 1 in use now, 1 more asked for"
    assert e.value.status == 403

    alloc.set_quota("group", "students", 2)
    alloc.allocate("server", "bob", user="bob", groups=["students"], count=2)
    with pytest.raises(QuotaExceeded, match="GPU quota of group students is 2; 2 in use"):
        alloc.allocate("server", "carol", user="carol", groups=["students"], count=1)
    # carol outside the group is not limited by it
    assert len(alloc.allocate("server", "carol", user="carol", count=1)) == 1

    alloc.release("server", "carol")
    # a project's quota is the one core.projects keeps
    projects = Projects(alloc.db)
    admin = Caller("root", scopes=frozenset({roles.ADMIN, roles.MANAGE}))
    projects.create(admin, "cells", gpu_quota=0)
    with pytest.raises(QuotaExceeded, match="GPU quota of project cells is 0"):
        alloc.allocate("job", "2", user="carol", project="cells", count=1)
    assert alloc.get_quota("project", "cells") == 0
    assert len(alloc.allocate("job", "3", user="carol", project="other", count=1)) == 1
    assert alloc.limits_for("bob", ["students"]) == [("group", "students", 2, 2)]
    with pytest.raises(InvalidInput, match="set on the project"):
        alloc.set_quota("project", "cells", 1)
    assert alloc.set_quota("user", "alice", None) is None
    assert alloc.get_quota("user", "alice") is None
    alloc.set_quota("user", "alice", 1)
    assert [q.to_dict() for q in alloc.quotas()] == [
        {"kind": "group", "name": "students", "gpus": 2},
        {"kind": "user", "name": "alice", "gpus": 1}]


def test_default_user_quota_and_bad_input(url):
    alloc = GpuAllocator(Database(url), TWO, default_user_quota=1)
    alloc.allocate("server", "alice", user="alice", count=1)
    with pytest.raises(QuotaExceeded, match="user alice is 1"):
        alloc.allocate("job", "x", user="alice", count=1)
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(InvalidInput):
            alloc.allocate("job", "y", user="bob", count=bad)
    with pytest.raises(InvalidInput):
        alloc.allocate("pod", "y", user="bob", count=1)
    with pytest.raises(InvalidInput):
        alloc.set_quota("team", "x", 1)
    with pytest.raises(InvalidInput):
        alloc.set_quota("user", "x", -2)
    assert alloc.get_quota("user", "x") is None  # nothing half-written
    assert alloc.allocate("job", "z", user="bob", count=0) == []


def test_no_gpu_inventory_message(url):
    alloc = GpuAllocator(Database(url), StaticInventory([]))
    with pytest.raises(NoGpuFree, match=r"no GPU on this platform \(no GPU configured\)"):
        alloc.allocate("server", "alice", user="alice", count=1)


def test_concurrent_allocators_never_share_a_device(url):
    # Eight allocators (as eight processes would), each on its own engine, racing for 4 GPUs.
    inv = StaticInventory([{}] * 4)
    allocators = [GpuAllocator(Database(url), inv) for _ in range(8)]

    def grab(i):
        try:
            return [g.uuid for g in allocators[i].allocate("job", str(i), user=f"u{i}", count=1)]
        except NoGpuFree:
            return []

    with ThreadPoolExecutor(8) as pool:
        got = [u for r in pool.map(grab, range(8)) for u in r]
    assert len(got) == 4 and len(set(got)) == 4
