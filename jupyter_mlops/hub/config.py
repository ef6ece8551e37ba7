"""Everything the hub needs to run jupyter-mlops, derived from a few ``MlopsHub`` settings.

``hub_config/jupyterhub_config.py`` calls :func:`configure_hub` on JupyterHub's config object.
Set ``c.MlopsHub.*`` before that call (``jupyter-mlops up`` writes them into a per-data-directory
config file that loads the project's one); set any ``c.JupyterHub.*`` after it to override.

Data directory layout (``data_dir``)::

    hub/        jupyterhub.sqlite, cookie secret, proxy pid, passwords.dbm (bcrypt hashes),
                ports.json (the internal listeners' ports, kept across starts: hub.ports)
    mlflow/     mlflow.db (SQLite), artifacts/, run/mlflow.sock (directory mode 0700)
    control/    the control plane's database and cookie secret
    store/      content-addressed object store of the datasets (local-directory backend)
    datasets/   the shared dataset root, mounted read-only into user servers
    users/      one workspace per user
    logs/       hub.log, mlflow.log, control.log
    up.lock     held while ``jupyter-mlops up`` runs on this directory
"""
from __future__ import annotations

import sys
from pathlib import Path

from traitlets import (Any, CaselessStrEnum, Dict, Float, Integer, List, Set, TraitError,
                       Unicode, default, validate)
from traitlets.config import Configurable

from . import error_pages, members, sso, tls
from .ports import internal_ports
from ..core import roles

REPO_ROOT = Path(__file__).resolve().parents[2]


class MlopsHub(Configurable):
    """Platform-level settings of a jupyter-mlops hub."""

    data_dir = Unicode(
        help="""Directory holding all state of this platform (layout in ``jupyter_mlops.hub.config``).
        Starting again on the same directory keeps accounts, runs and datasets.""",
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self):
        return str(Path.cwd() / "mlops-data")

    public_url = Unicode(
        "http://127.0.0.1:8000",
        help="""URL users open. The proxy binds to its host and port.""",
    ).tag(config=True)

    ssl_cert = Unicode(
        "",
        help="""TLS certificate (PEM, the full chain) the proxy serves ``public_url`` with;
        with ``ssl_key`` the platform answers HTTPS only (``jupyter-mlops up --ssl-cert``).
        Empty: plain HTTP, fit for 127.0.0.1 or behind a TLS-terminating proxy. Internal
        listeners stay plain HTTP on 127.0.0.1 and unix sockets (docs/security.md).""",
    ).tag(config=True)

    ssl_key = Unicode(
        "", help="""Private key (PEM) of ``ssl_cert``; keep it readable by root only.""",
    ).tag(config=True)

    ssl_ca = Unicode(
        "",
        help="""CA certificate(s) (PEM) that issued ``ssl_cert``, when neither a public CA nor
        in the chain of ``ssl_cert`` itself (a lab's own CA). Users' kernels and jobs track
        MLflow at the public HTTPS address and trust the public CAs, ``ssl_cert``'s own
        certificates (a self-signed one is its own CA) and these, through the CA bundle
        ``<data_dir>/tls/ca-bundle.pem`` in ``$REQUESTS_CA_BUNDLE`` and ``$SSL_CERT_FILE``.""",
    ).tag(config=True)

    @validate("ssl_cert", "ssl_key", "ssl_ca")
    def _validate_ssl_file(self, proposal):
        value = proposal["value"]
        if value and not Path(value).is_file():
            raise TraitError(f"{proposal['trait'].name} {value} is not a file")
        return str(Path(value).resolve()) if value else ""

    admin_users = Set(
        {"admin"},
        help="""Users who are hub administrators and system administrators of the platform.""",
    ).tag(config=True)

    gpu_devices = Any(
        None,
        allow_none=True,
        help="""GPU inventory shared by the spawner and the control plane. ``None`` discovers
        GPUs with NVML; a list of dicts (``[{"name": "A100", "memory_total_mb": 40960}]``)
        configures simulated or pinned devices, e.g. on machines without any GPU.""",
    ).tag(config=True)

    @validate("gpu_devices")
    def _validate_gpu_devices(self, proposal):
        value = proposal["value"]
        if isinstance(value, str):  # from the command line
            import json

            value = json.loads(value)
        if value is not None and not isinstance(value, list):
            raise TraitError("gpu_devices must be null or a list of device dicts")
        return value

    mlflow_workers = Integer(
        1,
        help="""Worker processes of the MLflow server. One is plenty for a lab of ten and keeps
        it at ~0.5 GB instead of ~2.5 GB.""",
    ).tag(config=True)

    proxy_command = Any(
        help="""Command starting configurable-http-proxy. Defaults to the copy installed by
        ``npm install`` in the repository, else ``configurable-http-proxy`` on PATH.""",
    ).tag(config=True)

    @default("proxy_command")
    def _default_proxy_command(self):
        local = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
        return [str(local)] if local.exists() else ["configurable-http-proxy"]

    # --- login and roles (see jupyter_mlops.hub.sso) ---------------------------------------------

    authenticator = CaselessStrEnum(
        ["local", "oidc"], "local",
        help="""How people log in. ``local``: accounts the administrator adds, each setting a
        password at first login (the embedded default). ``oidc``: an OpenID Connect provider
        such as Keycloak (``oidc_*`` settings), whose groups decide roles and projects.""",
    ).tag(config=True)

    oidc_issuer = Unicode(
        "",
        help="""Issuer URL of the OIDC provider, e.g.
        ``https://keycloak.example.org/realms/lab``. Its ``.well-known/openid-configuration``
        is read when the hub starts (unless ``oidc_endpoints`` gives all three endpoints).""",
    ).tag(config=True)

    oidc_endpoints = Dict(
        {},
        help="""Endpoints overriding discovery: ``authorization_endpoint``, ``token_endpoint``,
        ``userinfo_endpoint``.""",
    ).tag(config=True)

    oidc_client_id = Unicode("jupyterhub", help="OAuth client id registered at the provider.",
                             ).tag(config=True)

    oidc_client_secret = Unicode(
        "", help="OAuth client secret (client_secret_basic); keep it out of version control.",
    ).tag(config=True)

    oidc_scopes = List(
        Unicode(), ["openid", "profile", "groups"],
        help="""Scopes asked for. The provider must put the user's groups into the userinfo
        answer under ``oidc_groups_claim`` for these scopes (Keycloak: a "groups" client scope
        with a Group Membership mapper).""",
    ).tag(config=True)

    oidc_username_claim = Unicode(
        "preferred_username", help="Userinfo claim that becomes the hub user name.",
    ).tag(config=True)

    oidc_groups_claim = Unicode(
        "groups", help="Userinfo claim holding the user's IdP groups (a list of names).",
    ).tag(config=True)

    oidc_login_service = Unicode(
        "single sign-on", help="Shown on the login button: 'Sign in with <this>'.",
    ).tag(config=True)

    oidc_allowed_groups = Set(
        Unicode(), set(),
        help="""IdP groups (after ``group_roles`` mapping) whose members may log in; empty
        lets everyone the provider authenticates in, as a data scientist.""",
    ).tag(config=True)

    group_roles = Dict(
        {"mlops-admins": "admin", "mlops-pms": "manager"},
        help="""IdP group -> lab role: ``admin`` (system administrator) or ``manager``
        (project manager). Everyone else is a data scientist. Example::

            c.MlopsHub.group_roles = {"lab-it": "admin", "lab-pis": "manager"}
        """,
    ).tag(config=True)

    @validate("group_roles")
    def _validate_group_roles(self, proposal):
        from .sso import ROLE_GROUPS

        value = proposal["value"]
        bad = {k: v for k, v in value.items() if v not in ROLE_GROUPS}
        if bad:
            raise TraitError(f"group_roles values are one of {sorted(ROLE_GROUPS)}: {bad}")
        return value

    group_projects = Dict(
        {},
        help="""Hub/IdP group -> projects its members belong to. The control plane creates
        missing projects at start and links the group; a group member is a project member.
        Example::

            c.MlopsHub.group_projects = {"cells-team": ["cells"]}
        """,
    ).tag(config=True)

    idle_gpu_minutes = Float(
        30.0,
        help="""The admin page lists servers whose GPUs read 0 % utilisation for longer than
        this, with a button to stop them.""",
    ).tag(config=True)

    config_file = Unicode(
        "",
        help="""An extra Python config file (``jupyter-mlops up --config FILE``): its
        ``c.MlopsHub.*`` feed these settings, its other settings (``c.JupyterHub.*``...) are
        applied after everything ``configure_hub`` derives, so they override it.""",
    ).tag(config=True)

    dataset_store = Dict(
        {},
        help="""Where the control plane keeps dataset bytes: ``StoreSettings`` traits
        (``jupyter_mlops.backends.store.config``). Empty: the local directory
        ``<data_dir>/store``. Any S3 (SeaweedFS, MinIO, Ceph, AWS)::

            c.MlopsHub.dataset_store = {
                "backend": "s3", "s3_endpoint_url": "http://seaweedfs:8333",
                "s3_bucket": "mlops-datasets", "s3_path_style": True,
                "s3_access_key_id": "...", "s3_secret_access_key": "...",
            }

        The keys reach the control plane through its environment (``AWS_ACCESS_KEY_ID``,
        ``AWS_SECRET_ACCESS_KEY``, read by boto3), never its command line.""",
    ).tag(config=True)

    python = Unicode(
        sys.executable,
        help="Python interpreter running the platform's services and user servers.",
    ).tag(config=True)

    def path(self, *parts: str) -> Path:
        return Path(self.data_dir).resolve().joinpath(*parts)


# The MLflow processes' environment: no telemetry id written, no job runner (~2 GB less).
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_server_command(*, python: str, backend_store_uri: str, artifacts_destination: str,
                          workers: int, socket_path: str) -> list[str]:
    """``mlflow server`` behind the gateway: UI and REST API under ``/services/mlflow``,
    artifacts proxied (clients need no store credentials), listening on ``socket_path`` only."""
    return [
        str(Path(python).parent / "mlflow"), "server",
        "--backend-store-uri", backend_store_uri,
        "--artifacts-destination", artifacts_destination,
        "--serve-artifacts",
        "--workers", str(workers),
        "--static-prefix", "/services/mlflow",
        # A unix socket in a 0700 directory: nothing reaches MLflow except through the gateway.
        "--uvicorn-opts", f"--uds {socket_path}",
    ]


def mlflow_socket(hub: MlopsHub) -> Path:
    """Where MLflow listens; the control plane finds it at the same place under its data_dir."""
    return hub.path("mlflow", "run", "mlflow.sock")


def _mlflow_command(hub: MlopsHub) -> list[str]:
    return mlflow_server_command(
        python=hub.python, backend_store_uri=f"sqlite:///{hub.path('mlflow', 'mlflow.db')}",
        artifacts_destination=str(hub.path("mlflow", "artifacts")),
        workers=hub.mlflow_workers, socket_path=str(mlflow_socket(hub)))


def mlops_services(*, mlflow_command: list[str], mlflow_env: dict, mlflow_cwd: str,
                   control_plane_url: str, control_plane_command: list[str],
                   control_plane_env: dict, gateway_url: str, gateway_command: list[str],
                   gateway_env: dict) -> list[dict]:
    """The three hub-managed services, in start order (``c.JupyterHub.services`` entries)."""
    return [
        {
            # First: the hub starts services one after another and waits for each one with a
            # URL to answer; MLflow (no URL, so not waited for) boots slowest, in the meantime.
            # No URL: not routed by the proxy. The hub restarts it if it exits.
            "name": "mlflow-server",
            "command": mlflow_command,
            "environment": mlflow_env,
            "cwd": mlflow_cwd,
        },
        {
            "name": "mlops",
            "display": True,
            "info": {"description": "jupyter-mlops control plane"},
            "url": control_plane_url,
            "command": control_plane_command,
            "environment": control_plane_env,
            "oauth_redirect_uri": "/services/mlops/oauth_callback",
            "oauth_no_confirm": True,
            # The admin page's OAuth cookie carries the lab scopes its user holds (the hub
            # drops those they do not), so pages authorise like API calls.
            "oauth_client_allowed_scopes": [roles.USE, roles.MANAGE, roles.ADMIN],
        },
        {
            "name": "mlflow",
            "display": True,
            "info": {"description": "MLflow tracking server and UI"},
            "url": gateway_url,
            "command": gateway_command,
            "oauth_redirect_uri": "/services/mlflow/oauth_callback",
            "oauth_no_confirm": True,
            "environment": gateway_env,
        },
    ]


SPAWNER_SERVICE = "mlops-spawner"


def tracking_uri(hub: MlopsHub, gateway_url: str) -> str:
    """MLflow's tracking URI in users' servers and jobs.

    MLflow prints its "View run" links (and the sidebar's users copy them) from the tracking
    URI: the public address, through the hub's login, is one a person can open; the gateway's
    internal port answers a browser 401. With TLS too, its certificate trusted through the CA
    bundle of :func:`tls_environment`, unless kernels could not verify that address
    (:func:`tls.public_https_problem`: a wildcard bind address, a certificate not naming the
    host); then the internal gateway, and the hub's log says why.
    """
    if hub.ssl_cert and tls.public_https_problem(hub.public_url, hub.ssl_cert):
        return f"{gateway_url}/services/mlflow"
    return f"{hub.public_url.rstrip('/')}/services/mlflow"


def tls_environment(hub: MlopsHub) -> dict:
    """``$REQUESTS_CA_BUNDLE`` and ``$SSL_CERT_FILE`` for users' servers, the control plane and
    its jobs when they track MLflow at the public HTTPS address ({} otherwise)."""
    if not hub.ssl_cert:
        return {}
    problem = tls.public_https_problem(hub.public_url, hub.ssl_cert)
    if problem:
        print(f"jupyter-mlops: MLflow's links stay internal (no https): {problem}",
              file=sys.stderr)
        return {}
    bundle = tls.write_ca_bundle(hub.path("tls", "ca-bundle.pem"), hub.ssl_cert, hub.ssl_ca)
    return {name: str(bundle) for name in tls.CA_BUNDLE_ENV}


def spawner_token(hub: MlopsHub) -> str:
    """The token of the hub's spawner at the control plane, made once (0600 in ``hub/``, which
    only the hub reads) so servers started before a hub restart are released with it too."""
    import os
    import secrets

    path = hub.path("hub", "spawner_token")
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


def make_dirs(hub: MlopsHub) -> None:
    for d in ("hub", "mlflow/artifacts", "control", "store", "datasets", "users", "logs"):
        hub.path(d).mkdir(parents=True, exist_ok=True)
    run = hub.path("mlflow", "run")
    run.mkdir(parents=True, exist_ok=True)
    run.chmod(0o700)
    # State only the platform's own processes read: user servers run as per-user accounts and
    # reach MLflow and the control plane through hub-authenticated routes, never these files
    # (MLflow's database would otherwise expose every project's runs, the store every
    # project's dataset objects).
    for private in ("hub", "mlflow", "control", "logs", "store"):
        hub.path(private).chmod(0o700)


def settings_from(c) -> MlopsHub:
    """``c.MlopsHub`` as set in the config file, with the hub's command-line flags on top.

    A config file does not see command-line config (traitlets merges it afterwards), but
    ``configure_hub`` derives everything from these values at load time, so it reads them from
    the running JupyterHub application: ``jupyterhub -f ... --MlopsHub.data_dir=DIR`` works.
    """
    from traitlets.config import Application, Config

    merged = Config()
    merged.merge(c)
    cli = Application.instance().cli_config if Application.initialized() else Config()
    merged.merge(cli)
    extra_file = merged.get("MlopsHub", {}).get("config_file")
    if extra_file:
        merged.merge(_load_extra_config(extra_file))
        merged.merge(cli)  # the command line still wins
    return MlopsHub(config=merged)


def _load_extra_config(path: str):
    from traitlets.config.loader import PyFileConfigLoader

    p = Path(path).resolve()
    if not p.is_file():
        raise RuntimeError(f"MlopsHub.config_file {p} does not exist")
    return PyFileConfigLoader(p.name, str(p.parent)).load_config()


def configure_hub(c) -> MlopsHub:
    """Fill JupyterHub's config ``c`` for the embedded default. Returns the settings used."""
    hub = settings_from(c)
    make_dirs(hub)
    py = hub.python

    if bool(hub.ssl_cert) != bool(hub.ssl_key):
        raise RuntimeError("MlopsHub.ssl_cert and MlopsHub.ssl_key go together: give both")
    if hub.ssl_cert:  # the proxy terminates TLS on the public address
        c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = hub.ssl_cert, hub.ssl_key
    scheme, _, rest = hub.public_url.partition("://")
    c.JupyterHub.bind_url = f"{'https' if hub.ssl_cert else scheme}://{rest}"
    # Internal addresses are the same at every start (jobs outlive restarts; see hub.ports).
    ports = internal_ports(hub.path())
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{ports['hub_api']}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{ports['proxy_api']}"
    c.ConfigurableHTTPProxy.command = hub.proxy_command
    c.ConfigurableHTTPProxy.pid_file = str(hub.path("hub", "proxy.pid"))
    c.JupyterHub.db_url = f"sqlite:///{hub.path('hub', 'jupyterhub.sqlite')}"
    c.JupyterHub.cookie_secret_file = str(hub.path("hub", "jupyterhub_cookie_secret"))
    c.JupyterHub.pid_file = str(hub.path("hub", "jupyterhub.pid"))
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.default_url = "/hub/home"

    configure_login(c, hub)

    c.JupyterHub.spawner_class = "jupyter_mlops_spawner.MlopsLocalSpawner"
    c.Spawner.default_url = "/lab"
    c.Spawner.http_timeout = 60
    c.Spawner.start_timeout = 120
    c.MlopsLocalSpawner.workspace_root = str(hub.path("users"))
    c.MlopsLocalSpawner.shared_dataset_dir = str(hub.path("datasets"))

    cp_port, gw_port = ports["control_plane"], ports["gateway"]
    cp_url, gw_url = f"http://127.0.0.1:{cp_port}", f"http://127.0.0.1:{gw_port}"
    c.MlopsLocalSpawner.control_plane_url = f"{cp_url}/services/mlops/"
    # GPU allocations and quotas are the control plane's (its database, shared with jobs and
    # deployments); the spawner asks its API as the token-only service "mlops-spawner".
    c.MlopsLocalSpawner.gpu_api_url = f"{cp_url}/services/mlops/"
    c.MlopsLocalSpawner.gpu_api_token = spawner_token(hub)
    # A GPU server may wait in the GPU queue (MlopsLocalSpawner.gpu_queue_timeout, 30 min)
    # inside start(); the process itself then has http_timeout to answer.
    c.MlopsLocalSpawner.start_timeout = 1800 + 120
    c.MlopsLocalSpawner.mlflow_url = tracking_uri(hub, gw_url)
    ca_env = tls_environment(hub)  # kernels verify the public HTTPS address
    # same-machine publishing: the control plane's descriptor socket (backends.fdpass)
    c.MlopsLocalSpawner.environment.update(
        {"JUPYTER_MLOPS_PUBLISH_SOCKET": str(hub.path("run", "publish.sock")), **ca_env})
    cp_cmd = [py, "-m", "jupyter_mlops.service", f"--MlopsService.data_dir={hub.data_dir}",
              f"--PublishSocket.path={hub.path('run', 'publish.sock')}"]
    # Jobs reach MLflow through the gateway and the catalog through the control plane, each
    # with a token of its user (core/jobs/tracking.JOB_SCOPES).
    cp_cmd.append(f"--JobSettings.tracking_uri={tracking_uri(hub, gw_url)}")
    cp_cmd.append(f"--JobSettings.control_plane_url={cp_url}/services/mlops/")
    cp_cmd += platform_args(hub)
    if hub.config_file:  # its c.JobSettings.*, c.LocalDeployBackend.*... (the control plane's)
        cp_cmd.append(f"--MlopsService.config_file={Path(hub.config_file).resolve()}")
    cp_env = dict(ca_env)  # dataset store settings; secrets only in the environment
    for key, value in hub.dataset_store.items():
        if key == "s3_access_key_id":
            cp_env["AWS_ACCESS_KEY_ID"] = str(value)
        elif key == "s3_secret_access_key":
            cp_env["AWS_SECRET_ACCESS_KEY"] = str(value)
        else:
            cp_cmd.append(f"--StoreSettings.{key}={value}")
    c.JupyterHub.services = mlops_services(
        mlflow_command=_mlflow_command(hub), mlflow_env=dict(MLFLOW_ENV),
        mlflow_cwd=str(hub.path("mlflow")),
        control_plane_url=cp_url, control_plane_command=cp_cmd, control_plane_env=cp_env,
        gateway_url=gw_url, gateway_env=dict(MLFLOW_ENV), gateway_command=[
            py, "-m", "jupyter_mlops.service.mlflow_gateway",
            f"--MlflowGateway.socket_path={mlflow_socket(hub)}",
            f"--MlflowGateway.cookie_secret_file={hub.path('control', 'gateway_secret')}",
        ])
    c.JupyterHub.load_groups, c.JupyterHub.load_roles = configure_roles(c, hub)
    c.JupyterHub.services.append({"name": SPAWNER_SERVICE, "api_token": spawner_token(hub)})
    c.JupyterHub.load_roles.append({
        "name": SPAWNER_SERVICE, "services": [SPAWNER_SERVICE], "scopes": [roles.SPAWNER],
        "description": "The hub's spawner: GPUs of user servers, from the control plane."})
    if hub.config_file:  # the extra file's own settings override what was derived here
        extra = _load_extra_config(hub.config_file)
        extra.pop("MlopsHub", None)
        c.merge(extra)
        # A user's jobs and model servers run as the account their server runs as: the
        # control plane follows the spawner's account settings, set once.
        spawner = extra.get("MlopsLocalSpawner", {})
        cp = next(s for s in c.JupyterHub.services if s["name"] == "mlops")
        for trait in ("system_user_prefix", "isolate_users"):
            if trait in spawner:
                cp["command"].append(f"--AccountSettings.{trait}={spawner[trait]}")
    return hub


def platform_args(hub: MlopsHub) -> list[str]:
    """The control plane's command-line settings that follow ``MlopsHub`` on every backend:
    the GPU inventory, group-linked projects, the idle-GPU threshold of the admin page."""
    import json

    args = []
    if hub.gpu_devices is not None:
        args.append(f"--MlopsService.gpu_devices={json.dumps(hub.gpu_devices)}")
    if hub.group_projects:
        args.append(f"--PlatformAdmin.group_projects={json.dumps(hub.group_projects)}")
    args.append(f"--PlatformAdmin.idle_gpu_minutes={hub.idle_gpu_minutes}")
    return args


def configure_login(c, hub: MlopsHub) -> None:
    """Local accounts (the administrator adds users; each sets a password at first login,
    bcrypt-hashed in ``<data_dir>/hub/passwords.dbm``; unknown names cannot log in), or OIDC."""
    c.JupyterHub.authenticator_class = "firstuseauthenticator.FirstUseAuthenticator"
    c.FirstUseAuthenticator.create_users = False
    c.FirstUseAuthenticator.dbm_path = str(hub.path("hub", "passwords.dbm"))
    c.FirstUseAuthenticator.min_password_length = 8
    c.Authenticator.admin_users = set(hub.admin_users)
    c.Authenticator.allow_existing_users = True
    if hub.authenticator == "oidc":
        sso.configure_oidc(c, hub)


def configure_roles(c, hub: MlopsHub) -> tuple[dict, list]:
    """Custom scopes, the hub pages' templates and the user servers' token scopes on ``c``;
    returns ``(load_groups, load_roles)`` of the lab roles for the caller to install (the
    embedded default replaces the lists, Zero-to-JupyterHub's config adds to its own)."""
    # Scopes and roles: every lab member uses the platform; groups carry the other two roles
    # (on SSO the IdP's groups fill them).
    c.JupyterHub.custom_scopes = {s: {"description": d} for s, d in roles.ALL_SCOPES.items()}
    access = sso.ACCESS
    # The hub's navigation links to the MLOps pages (a page.html extending the hub's own).
    c.JupyterHub.template_paths = [str(Path(__file__).parent / "templates")]
    # The proxy's error answers for API paths are JSON (a service restarting: 503 + reason).
    error_pages.install()
    # The group of users the control plane may mint tokens for: all but hub administrators.
    members.install()
    # The user server's own token carries the user's lab scopes (filtered to what they hold),
    # so the sidebar calls the control plane and MLflow as that user.
    c.Spawner.server_token_scopes = [
        "users:activity!user", "access:servers!server",
        roles.USE, roles.MANAGE, roles.ADMIN, *access,
    ]
    c.Spawner.oauth_client_allowed_scopes = [*access]
    return sso.load_roles(hub.admin_users, local=hub.authenticator == "local")
