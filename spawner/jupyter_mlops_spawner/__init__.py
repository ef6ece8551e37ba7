"""JupyterHub spawners of jupyter-mlops: one profile model, a local and a Kubernetes backend.

``jupyter_mlops_spawner.MlopsLocalSpawner`` (one machine) and
``jupyter_mlops_spawner.MlopsKubeSpawner`` (Kubernetes, imported only when asked for, so the
embedded default never loads the Kubernetes client).
"""
from .local import MlopsLocalSpawner
from .profiles import Profile

__all__ = ["MlopsLocalSpawner", "MlopsKubeSpawner", "Profile"]


def __getattr__(name):
    if name == "MlopsKubeSpawner":
        from .kube import MlopsKubeSpawner

        return MlopsKubeSpawner
    raise AttributeError(name)
