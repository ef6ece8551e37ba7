"""The control plane trusts only the hub: valid token 200, none 401, missing scope 403."""
import requests

from jupyter_mlops.core import roles


def test_status_with_a_valid_hub_token(platform):
    r = platform.api("GET", "/services/mlops/api/status", platform.admin_token())
    assert r.status_code == 200
    body = r.json()
    assert body["user"] == "admin"
    assert body["role"] == roles.SYSTEM_ADMINISTRATOR


def test_no_token_is_401_with_a_reason(platform):
    r = requests.get(f"{platform.url}/services/mlops/api/status", timeout=30)
    assert r.status_code == 401
    assert "token" in r.json()["message"]


def test_a_forged_token_is_401(platform):
    r = platform.api("GET", "/services/mlops/api/status", "not-a-real-token")
    assert r.status_code == 401


def test_a_token_without_the_mlops_scope_is_403(platform):
    # A real token of the admin, restricted to reading its own user model.
    token = platform.token("admin", scopes=["read:users:name!user=admin",
                                             "access:services!service=mlops"])
    r = platform.api("GET", "/services/mlops/api/status", token)
    assert r.status_code == 403
    assert roles.USE in r.json()["message"]


def test_a_new_user_is_a_data_scientist(platform):
    platform.add_user("dora", "dora-password-1")
    token = platform.token("dora")
    r = platform.api("GET", "/services/mlops/api/status", token)
    assert r.status_code == 200
    assert r.json()["role"] == roles.DATA_SCIENTIST


def test_membership_of_mlops_pms_makes_a_project_manager(platform):
    platform.add_user("pam", "pam-password-1", groups=["mlops-pms"])
    token = platform.token("pam")
    r = platform.api("GET", "/services/mlops/api/status", token)
    assert r.json()["role"] == roles.PROJECT_MANAGER


def test_unknown_api_path_is_a_json_404(platform):
    r = platform.api("GET", "/services/mlops/api/no-such-thing", platform.admin_token())
    assert r.status_code == 404
    assert r.json()["error"] == "Not Found"


def test_mlflow_gateway_refuses_anonymous_and_serves_token_holders(platform):
    anon = requests.get(f"{platform.url}/services/mlflow/version", timeout=30)
    assert anon.status_code == 401
    r = platform.api("GET", "/services/mlflow/version", platform.admin_token())
    assert r.status_code == 200
    assert r.text.strip()[0].isdigit()
