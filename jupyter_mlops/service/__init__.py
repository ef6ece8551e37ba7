"""The control plane: a JupyterHub-managed service (``python -m jupyter_mlops.service``)."""
