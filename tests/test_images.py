"""hub_config/images/: the build files of the images hub_config/z2jh-values.yaml names.

No image can be built on these machines (no container engine), so the build files are read: every
image the values name (for the hub, user servers, GPU profiles, jobs and model servers) is a
target of docker-bake.json, every target's Dockerfile installs the wheel this project builds, and
its build-time checks run what the values and the backends start in that image (derived here
from the values, not listed by hand).
"""
import fnmatch
import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from jupyter_mlops._version import __version__
from tests.z2jh_chart import chart_config, load_values

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "hub_config" / "images"


def dockerfile(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of a Dockerfile, continuation lines joined."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), " ".join(rest.split())))
        pending = ""
    return out


@pytest.fixture(scope="module")
def bake() -> dict:
    """docker-bake.json's targets with its variables' defaults filled in."""
    doc = json.loads((IMAGES / "docker-bake.json").read_text())
    defaults = {k: v["default"] for k, v in doc["variable"].items()}
    text = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], json.dumps(doc["target"]))
    assert defaults["VERSION"] == __version__  # images are tagged with the wheel's version
    assert doc["group"]["default"]["targets"] == list(doc["target"])
    return json.loads(text)


@pytest.fixture(scope="module")
def values_images() -> dict[str, str]:
    """``{image: bake target it must come from}`` for every image the values name."""
    values = load_values()
    conf = values["hub"]["config"]
    profile_images = {p["image"] for p in conf["MlopsKubeSpawner"]["profiles"] if p.get("image")}
    assert all(p.get("gpus") for p in conf["MlopsKubeSpawner"]["profiles"] if p.get("image"))
    image = lambda d: f"{d['name']}:{d['tag']}"  # noqa: E731
    return {image(values["hub"]["image"]): "hub",
            image(values["singleuser"]["image"]): "singleuser",
            conf["KubeJobBackend"]["image"]: "singleuser",
            conf["KubeJobBackend"]["gpu_image"]: "singleuser-cuda",
            **{i: "singleuser-cuda" for i in profile_images},
            conf["KubeDeployBackend"]["image"]: "model-server"}


def test_every_image_the_values_name_has_a_build_file(bake, values_images):
    by_tag = {tag: name for name, t in bake.items() for tag in t["tags"]}
    assert {i: by_tag.get(i) for i in values_images} == values_images
    assert set(by_tag) == set(values_images)  # and nothing is built that nothing uses
    for name, target in bake.items():
        assert target["context"] == "."  # the repository root, where dist/ is
        assert (REPO / target["dockerfile"]).is_file(), name
    # the CUDA variant is the same file on a CUDA base
    assert bake["singleuser"]["dockerfile"] == bake["singleuser-cuda"]["dockerfile"]
    assert "cuda" in bake["singleuser-cuda"]["args"]["BASE_IMAGE"]


def test_each_build_file_installs_the_projects_wheel(bake):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # the file name of the wheel `pip wheel --no-deps -w dist .` builds (a pure Python wheel)
    wheel = f"{re.sub(r'[-_.]+', '_', project['name'])}-{__version__}-py3-none-any.whl"
    for name, target in bake.items():
        steps = dockerfile(REPO / target["dockerfile"])
        copies = [shlex.split(a) for i, a in steps if i == "COPY"]
        (copy,) = [c for c in copies if fnmatch.fnmatch(f"dist/{wheel}", c[0])]
        dest = copy[-1]
        assert dest.endswith("/"), name
        installs = [a for i, a in steps if i == "RUN" and "pip install" in a]
        assert any(f"{dest}{Path(copy[0]).name}" in a for a in installs), name
        # nothing else of the project is copied in: the image runs what the wheel holds
        assert copies == [copy], name


def _checks(bake, target: str) -> str:
    """The build-time checks of a target (the RUN steps after the wheel is installed)."""
    steps = dockerfile(REPO / bake[target]["dockerfile"])
    runs = [a for i, a in steps if i == "RUN"]
    return " ; ".join(runs[1:])


def _wheel_has(module: str) -> bool:
    """``module`` is in one of the packages the wheel is built from (pyproject.toml)."""
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"]["wheel"]["packages"]
    for pkg in packages:
        top = Path(pkg).name
        if module == top or module.startswith(top + "."):
            rel = Path(pkg, *module.split(".")[1:])
            return (REPO / rel).with_suffix(".py").is_file() or (
                REPO / rel / "__init__.py").is_file()
    return False


def test_the_hub_image_runs_what_the_values_run_in_the_hub_pod(bake, tmp_path, monkeypatch):
    c = chart_config(load_values(), data_dir=tmp_path, monkeypatch=monkeypatch)
    checks = _checks(bake, "hub")
    spawner_module = c.JupyterHub.spawner_class.rsplit(".", 1)[0]
    extra = load_values()["hub"]["extraConfig"]["jupyter-mlops"]
    imported = re.findall(r"^from ([\w.]+) import", extra, re.M) + [spawner_module]
    for module in imported:
        assert _wheel_has(module) and module in checks, module
    deps = {re.split(r"[<>=\[ ]", d)[0] for d in tomllib.loads(
        (REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    for service in c.JupyterHub.services:
        cmd = service.get("command") or []
        if not cmd:  # a token-only service (the spawner's mlops-spawner) runs nothing
            continue
        if cmd[1:2] == ["-m"]:
            module = cmd[2]
            # ours come from the wheel; the chart's culler from its own hub image
            assert _wheel_has(module) or module == "jupyterhub_idle_culler", module
            assert f"python -m {module} " in checks, module
        else:  # a console script next to the interpreter (mlflow server)
            script = Path(cmd[0]).name
            assert script in deps and f'/{script}" {cmd[1]}' in checks, cmd[:2]
    assert [a for i, a in dockerfile(REPO / bake["hub"]["dockerfile"]) if i == "USER"][-1] \
        == "1000"


def test_user_images_run_the_servers_and_the_jobs_the_values_start(bake):
    from jupyter_mlops.backends.jobs_kube import make_job

    values = load_values()
    # No command of our own: Zero-to-JupyterHub's singleuser.cmd, jupyterhub-singleuser
    assert "cmd" not in values["singleuser"]
    job = make_job(job_id=1, user="u", namespace="n", image="i", job_dir="/j/1", cwd="/w",
                   env={})
    (wrapper,) = re.findall(r"python -m ([\w.]+)", " ".join(
        job["spec"]["template"]["spec"]["containers"][0]["command"]))
    assert _wheel_has(wrapper)
    for target in ("singleuser", "singleuser-cuda"):
        checks = _checks(bake, target)
        assert "command -v jupyterhub-singleuser" in checks
        # the wheel's server extension and the sidebar are enabled where users work
        assert "jupyter server extension list" in checks and "jupyter_mlops.*enabled" in checks
        assert "jupyter labextension list" in checks
        assert f"import {wrapper}" in checks


def test_the_model_server_image_runs_the_deployments_command(bake):
    from jupyter_mlops.backends.deploy_kube_objects import make_model_deployment

    dep = make_model_deployment(deployment="d", version="1", model_uri="models:/m/1",
                                image="i", namespace="n")
    pod = dep["spec"]["template"]["spec"]
    cmd = pod["containers"][0]["command"]
    assert cmd[:2] == ["python", "-m"] and _wheel_has(cmd[2])
    assert f"python -m {cmd[2]} " in _checks(bake, "model-server")
    steps = dockerfile(REPO / bake["model-server"]["dockerfile"])
    # the pod runs as this uid with a read-only root filesystem: the image's user is the same
    assert [a for i, a in steps if i == "USER"][-1] == str(pod["securityContext"]["runAsUser"])
