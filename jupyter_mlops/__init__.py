"""jupyter-mlops: an on-premise MLOps platform for JupyterHub and JupyterLab."""
from ._version import __version__


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyter-mlops"}]


def _jupyter_server_extension_points():
    return [{"module": "jupyter_mlops"}]


def _load_jupyter_server_extension(server_app):
    from .server import load

    load(server_app)


__all__ = ["__version__"]
