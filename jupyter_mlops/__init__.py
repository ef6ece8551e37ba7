"""jupyter-mlops: an on-premise MLOps platform for JupyterHub and JupyterLab."""
from ._version import __version__


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "jupyter-mlops"}]


def _jupyter_server_extension_points():
    return [{"module": "jupyter_mlops"}]


def _load_jupyter_server_extension(server_app):
    from .server import load

    load(server_app)


def load_ipython_extension(ipython):
    """``%load_ext jupyter_mlops``: the ``%mlops`` magics (see :mod:`jupyter_mlops.magics`)."""
    from .magics import load_ipython_extension as load_magics

    load_magics(ipython)


__all__ = ["__version__"]
