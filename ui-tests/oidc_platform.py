"""A platform logging in through a real OIDC provider (npm oidc-provider, tests/oidc/).

Shared by test_sso.py and test_admin_page.py through the session fixture ``sso``: the provider
with static accounts in groups mlops-admins (ada), mlops-pms + cells-team (pat), cells-team
(sam) and nuclei-team (dora), and a `jupyter-mlops up --config` whose config selects OIDC,
maps cells-team to the project "cells", simulates two GPUs at 0 % utilisation and offers a
CPU and a 1-GPU server profile.
"""
from __future__ import annotations

import json
import re
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.fixtures import REPO, Platform, free_port

ACCOUNTS = json.loads((REPO / "tests" / "oidc" / "accounts.json").read_text())

CONFIG = """\
c.MlopsHub.authenticator = "oidc"
c.MlopsHub.oidc_issuer = {issuer!r}
c.MlopsHub.oidc_client_id = "jupyterhub"
c.MlopsHub.oidc_client_secret = {secret!r}
c.MlopsHub.oidc_login_service = "Test IdP"
c.MlopsHub.group_projects = {{"cells-team": ["cells"]}}
c.MlopsHub.gpu_devices = [
    {{"name": "A100", "utilization_pct": 0, "memory_used_mb": 2100, "memory_total_mb": 40960}},
    {{"name": "A100", "utilization_pct": 0, "memory_used_mb": 0, "memory_total_mb": 40960}},
]
# Idle means "0 % for more than 0 minutes" here, so the test need not wait half an hour.
c.MlopsHub.idle_gpu_minutes = 0
# The test machine is shared: give a spawning server time (a c.JupyterHub-level override).
c.Spawner.http_timeout = 180
c.Spawner.start_timeout = 240
c.MlopsLocalSpawner.profiles = [
    {{"slug": "cpu", "display_name": "CPU only", "default": True}},
    {{"slug": "a100-1", "display_name": "1 x A100", "gpus": 1, "gpu_type": "A100"}},
]
"""


@dataclass
class Sso:
    platform: Platform
    issuer: str


def start_provider(port: int, redirect_uri: str, secret: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        ["node", str(REPO / "tests" / "oidc" / "provider.mjs"), "--port", str(port),
         "--client-id", "jupyterhub", "--client-secret", secret, "--redirect-uri", redirect_uri],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    line = proc.stdout.readline()
    if not line.startswith("ready "):
        proc.kill()
        raise RuntimeError(f"oidc-provider did not start: {line!r}")
    return proc


@pytest.fixture(scope="session")
def sso(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sso")
    port, idp_port, secret = free_port(), free_port(), secrets.token_hex(16)
    idp = start_provider(idp_port, f"http://127.0.0.1:{port}/hub/oauth_callback", secret)
    issuer = f"http://127.0.0.1:{idp_port}"
    config = tmp / "sso_config.py"
    config.write_text(CONFIG.format(issuer=issuer, secret=secret))
    platform = Platform(tmp / "data", port=port, extra_args=["--config", str(config)])
    try:
        platform.start()
        yield Sso(platform, issuer)
    finally:
        platform.stop()
        idp.terminate()
        idp.wait(10)


def sso_login(page: Page, sso: Sso, username: str, password: str | None = None) -> None:
    """Log in as a person would: the hub's login button, the IdP's form, back to the hub."""
    page.goto(f"{sso.platform.url}/hub/login")
    page.get_by_role("button", name=re.compile("Sign in with Test IdP")).click()
    page.wait_for_url(re.compile(re.escape(sso.issuer) + "/interaction/"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password or ACCOUNTS[username]["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(sso.platform.url) + "/hub/"))


def sso_token(page: Page, sso: Sso, username: str) -> str:
    """A hub API token of the logged-in ``username``, made as the hub's token page makes it."""
    # the hub's own _xsrf cookie (services and user servers set theirs on other paths)
    xsrf = next(c["value"] for c in page.context.cookies()
                if c["name"] == "_xsrf" and c["path"] == "/hub/")
    r = page.request.post(f"{sso.platform.url}/hub/api/users/{username}/tokens",
                          data=json.dumps({"note": "ui-tests", "expires_in": 3600}),
                          headers={"X-XSRFToken": xsrf, "Content-Type": "application/json"})
    assert r.ok, r.text()
    return r.json()["token"]
