"""Building MlopsKubeSpawner instances outside a hub, as kubespawner's own tests do."""
from __future__ import annotations

from types import SimpleNamespace

from jupyterhub.objects import Hub, Server
from traitlets.config import Config

from jupyter_mlops_spawner.kube import MlopsKubeSpawner


class StubUser:
    """The parts of JupyterHub's User a spawner reads."""

    def __init__(self, name: str, groups=(), roles=("user",)):
        self.name = self.escaped_name = name
        self.id = abs(hash(name)) % 10_000
        self.url = f"/user/{name}/"
        self.groups = [SimpleNamespace(name=g, roles=[]) for g in groups]
        self.roles = [SimpleNamespace(name=r) for r in roles]
        self.settings = {}
        self.spawners = {}


def make_spawner(user: str, config: Config | None = None, groups=(), **options):
    c = Config()
    c.MlopsKubeSpawner.namespace = "default"
    c.MlopsKubeSpawner.start_timeout = 30
    c.MlopsKubeSpawner.image = "quay.io/jupyter/scipy-notebook:2025-01-06"
    c.MlopsKubeSpawner.profiles = [
        {"slug": "cpu", "display_name": "CPU only", "default": True, "cpu_limit": 2,
         "mem_limit": "4G"},
        {"slug": "gpu-1", "display_name": "One GPU", "gpus": 1, "gpu_type": "A100",
         "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06"},
        {"slug": "big", "display_name": "Two GPUs", "gpus": 2,
         "allowed_groups": ["deep-learning"]},
    ]
    if config:
        c.merge(config)
    sp = MlopsKubeSpawner(hub=Hub(), user=StubUser(user, groups), config=c,
                          api_token="secret-token", oauth_client_id=f"jupyterhub-user-{user}",
                          _mock=True)
    sp.server = Server(ip="127.0.0.1", port=8888, base_url=f"/user/{user}/")
    sp.user_options = options
    return sp
