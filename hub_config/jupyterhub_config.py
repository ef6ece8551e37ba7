# JupyterHub configuration of the jupyter-mlops embedded default (one machine).
#
# `jupyter-mlops up` sets c.MlopsHub.* (data directory, URL) and then loads this file.
# To run the hub yourself: set c.MlopsHub.* above the call, overrides below it, and start
# `jupyterhub -f hub_config/jupyterhub_config.py`.
# Kubernetes: see hub_config/z2jh-values.yaml (Zero-to-JupyterHub).
from jupyter_mlops.hub.config import configure_hub

configure_hub(c)  # noqa: F821 (c is JupyterHub's config object)
