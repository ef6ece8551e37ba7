"""Model servers inside their CPU and memory limits: real servers in real cgroups (root, as CI).

The local backend on its own (no control plane): models saved to directories, as the control
plane hands them over from the local artifact store.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from jupyter_mlops.backends.deploy_local import LocalDeployBackend
from jupyter_mlops.backends.limits import PREFIX
from jupyter_mlops.core.deployments import LoadFailed

from .conftest import training_data

HERE = Path(__file__).parent


def _groups(name: str) -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return [d for d in (root / name, root / "memory" / name, root / "cpu" / name) if d.is_dir()]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    import mlflow.pyfunc
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("models")
    x, y = training_data()
    mlflow.sklearn.save_model(LogisticRegression().fit(x, y), str(root / "lr"),
                              serialization_format="cloudpickle",
                              pip_requirements=["mlflow", "scikit-learn"])
    mlflow.pyfunc.save_model(str(root / "hungry"), python_model=str(HERE / "hungry_model.py"),
                             pip_requirements=["mlflow"])
    return root


@pytest.fixture
def backend(tmp_path):
    assert os.geteuid() == 0, "cgroups need root (CI runs as root)"
    return LocalDeployBackend(run_dir=str(tmp_path / "deployments"), memory_limit="400M",
                              cpu_limit=1.0, start_timeout=90)


@pytest.mark.asyncio
async def test_a_model_server_runs_inside_its_group(backend, models):
    inst = await backend.start("lr-limited", "1", str(models / "lr"))
    name = PREFIX + inst["cgroup"]
    try:
        assert await backend.alive(inst)
        where = Path(f"/proc/{inst['pid']}/cgroup").read_text()
        assert f"memory:/{name}\n" in where or f"::/{name}\n" in where, where
        limits = {k: v for g in _groups(name) for k, v in
                  ((f.name, f.read_text().strip()) for f in g.iterdir()
                   if f.name in ("memory.max", "memory.limit_in_bytes"))}
        assert set(limits.values()) == {str(400 * 2**20)}, limits
    finally:
        await backend.stop(inst)
    assert _groups(name) == []  # the group goes with the server


@pytest.mark.asyncio
async def test_a_model_too_big_for_its_limit_fails_saying_so(backend, models):
    with pytest.raises(LoadFailed) as e:
        await backend.start("hungry", "1", str(models / "hungry"))
    assert str(e.value).startswith("out of memory: the model server went over its limit "
                                   "of 400 MiB"), e.value
    # its group is gone, nothing is left running
    tag = backend._platform_tag()
    assert not list(Path("/sys/fs/cgroup/memory").glob(f"{PREFIX}model-{tag}-*"))


@pytest.mark.asyncio
async def test_reap_removes_what_gone_servers_left(backend, models, tmp_path):
    kept = await backend.start("kept", "1", str(models / "lr"))
    # a server of a deleted deployment, and a model copy whose server died with the machine
    gone = await backend.start("gone", "1", str(models / "lr"))
    stale = Path(backend.run_dir) / "gone" / "model-version-1-123"
    (stale / "sub").mkdir(parents=True)
    try:
        await backend.reap([kept])
        assert await backend.alive(kept)
        assert not await backend.alive(gone)
        assert not stale.exists()
        assert _groups(PREFIX + gone["cgroup"]) == [] and _groups(PREFIX + kept["cgroup"])
    finally:
        await backend.stop(kept)
