"""JupyterHub spawners of jupyter-mlops: one profile model, a local and a Kubernetes backend."""
from .local import MlopsLocalSpawner

__all__ = ["MlopsLocalSpawner"]
