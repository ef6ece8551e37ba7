"""The hub config for OIDC login, loaded as `jupyter-mlops up --config FILE` loads it."""
from pathlib import Path

import pytest
from traitlets.config import Application, PyFileConfigLoader

from jupyter_mlops.core import roles
from jupyter_mlops.hub.sso import hub_groups_for

REPO = Path(__file__).resolve().parents[2]

EXTRA = """
c.MlopsHub.authenticator = "oidc"
c.MlopsHub.oidc_issuer = "https://keycloak.example.org/realms/lab"
c.MlopsHub.oidc_endpoints = {
    "authorization_endpoint": "https://kc/auth", "token_endpoint": "https://kc/token",
    "userinfo_endpoint": "https://kc/userinfo"}
c.MlopsHub.oidc_client_secret = "s3cret"
c.MlopsHub.group_roles = {"lab-it": "admin", "lab-pis": "manager"}
c.MlopsHub.group_projects = {"cells-team": ["cells"]}
c.JupyterHub.default_url = "/hub/spawn"
"""


@pytest.fixture
def load(tmp_path):
    def _load(extra: str | None):
        args = [f"--MlopsHub.data_dir={tmp_path / 'data'}"]
        if extra is not None:
            f = tmp_path / "site.py"
            f.write_text(extra)
            args.append(f"--MlopsHub.config_file={f}")
        Application.instance().parse_command_line(args)
        return PyFileConfigLoader("jupyterhub_config.py", path=str(REPO / "hub_config")
                                  ).load_config()

    yield _load
    Application.clear_instance()


def test_local_accounts_by_default_with_the_role_groups(load):
    c = load(None)
    assert c.JupyterHub.authenticator_class == "firstuseauthenticator.FirstUseAuthenticator"
    assert c.JupyterHub.load_groups["mlops-admins"]["users"] == ["admin"]
    by_name = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles.ADMIN in by_name["mlops-admin"]["scopes"]
    assert roles.ADMIN not in by_name["mlops-project-manager"]["scopes"]
    assert by_name["mlops-control-plane"]["services"] == ["mlops"]
    # least privilege: the control plane may stop servers and edit groups, not be hub admin
    assert "admin:users" not in by_name["mlops-control-plane"]["scopes"]
    assert "delete:servers" in by_name["mlops-control-plane"]["scopes"]


def test_oidc_maps_idp_groups_to_roles_and_projects(load):
    c = load(EXTRA)
    g = c.GenericOAuthenticator
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert (g.authorize_url, g.token_url, g.userdata_url) == (
        "https://kc/auth", "https://kc/token", "https://kc/userinfo")
    assert g.client_secret == "s3cret" and g.manage_groups is True
    assert g.admin_groups == {"mlops-admins"}
    assert c.JupyterHub.load_groups == {}  # the IdP owns group membership
    state = {"oauth_user": {"groups": ["/lab-it", "cells-team"]}}
    assert g.auth_state_groups_key(state) == ["cells-team", "lab-it", "mlops-admins"]
    assert g.auth_state_groups_key({"oauth_user": {"groups": "lab-pis"}}) == [
        "lab-pis", "mlops-pms"]
    cp = next(s for s in c.JupyterHub.services if s["name"] == "mlops")
    assert '--PlatformAdmin.group_projects={"cells-team": ["cells"]}' in cp["command"]
    # the extra file's own JupyterHub settings override what configure_hub derived
    assert c.JupyterHub.default_url == "/hub/spawn"


def test_bad_role_mapping_is_refused(load):
    with pytest.raises(Exception, match="group_roles"):
        load('c.MlopsHub.group_roles = {"x": "overlord"}\n')


def test_hub_groups_for_keeps_unmapped_groups():
    assert hub_groups_for(["nuclei-team"], {"mlops-admins": "admin"}) == ["nuclei-team"]
