"""What Zero-to-JupyterHub 4.x's jupyterhub_config.py does with our values, without a cluster.

The chart's config (jupyterhub/files/hub/jupyterhub_config.py) first adds the idle culler's
service and role when ``cull.enabled``, then copies each ``hub.config.<Section>`` into
``c.<Section>``, then executes the ``hub.extraConfig`` snippets in key order. The hub pod's
``hub.extraEnv`` secrets are environment variables of that process.
"""
from __future__ import annotations

from pathlib import Path

import yaml
from traitlets.config import Config

VALUES = Path(__file__).resolve().parents[1] / "hub_config" / "z2jh-values.yaml"
SECRETS = {"PGPASSWORD": "pg-secret", "AWS_ACCESS_KEY_ID": "s3-id",
           "AWS_SECRET_ACCESS_KEY": "s3-secret"}
CULLER = {"name": "jupyterhub-idle-culler", "command": ["python3", "-m", "jupyterhub_idle_culler"]}
CULLER_ROLE = {"name": "jupyterhub-idle-culler", "services": ["jupyterhub-idle-culler"],
               "scopes": ["list:users", "read:users:activity", "read:servers",
                          "delete:servers"]}


def load_values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def chart_config(values: dict, *, data_dir: Path, monkeypatch) -> Config:
    """``c`` as the hub pod's config file leaves it. ``data_dir`` replaces
    ``MlopsHub.data_dir`` (the hub pod's /srv/jupyterhub volume is not on this machine)."""
    hub = values["hub"]
    for env in hub["extraEnv"]:  # each value comes from a Secret key in the pod
        monkeypatch.setenv(env["name"], SECRETS[env["name"]])
    monkeypatch.setenv("POD_NAMESPACE", "jhub")
    c = Config()
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    if values.get("cull", {}).get("enabled"):
        c.JupyterHub.services.append(dict(CULLER))
        c.JupyterHub.load_roles.append(dict(CULLER_ROLE))
    for section, cfg in hub["config"].items():
        c[section].update(yaml.safe_load(yaml.safe_dump(cfg)))  # a fresh copy
    c.MlopsHub.data_dir = str(data_dir)
    for _key, snippet in sorted(hub.get("extraConfig", {}).items()):
        exec(snippet, {"c": c})
    return c
