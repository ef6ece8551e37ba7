"""The control plane application (a JupyterHub-managed service).

It owns everything that must outlive a user's server and be enforced in one place: projects,
roles, quotas, GPU allocation, the dataset catalog, jobs and deployments. Started by the hub as
``python -m jupyter_mlops.service``; the hub passes ``JUPYTERHUB_API_TOKEN``,
``JUPYTERHUB_SERVICE_URL`` and ``JUPYTERHUB_SERVICE_PREFIX`` in its environment.
"""
from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuthCallbackHandler
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import Any, Integer, List, Unicode, default
from traitlets.config import Application

from .._version import __version__
from ..core.db import Database
from ..core.gpu_allocation import GpuAllocator
from ..backends.gpu_inventory import inventory_from_config
from ..core.gpus import GpuInventory
from ..core.notifications import Notifications
from ..core.projects import Projects
from ..core.datasets.catalog import DatasetCatalog
from ..backends.store import ObjectStore, StoreSettings, store_from_settings
from .platform_admin import PlatformAdmin
from .routes import routes


@dataclass
class ServiceContext:
    """What handlers reach through ``self.context``: the domain objects, built once."""

    data_dir: Path
    gpu_inventory: GpuInventory
    db: Database
    projects: Projects
    settings: dict = field(default_factory=dict)
    deployments: "Deployments | None" = None  # model endpoints (core.deployments)
    admin: "PlatformAdmin | None" = None  # hub users/servers, GPU-hours, idle GPUs (admin page)
    # Shared with the hub's local spawner over the same database (core.gpu_allocation).
    gpu_allocator: GpuAllocator | None = None
    gpu_culling: "GpuCulling | None" = None  # idle GPU servers nudged, then released
    datasets: "DatasetCatalog | None" = None  # the shared dataset catalog (core.datasets)
    store: "ObjectStore | None" = None  # where dataset bytes live (backends.store)
    jobs: "JobsPlatform | None" = None  # jobs, sweeps, pipelines + runner (service.jobs_platform)
    monitoring: "Monitoring | None" = None  # traffic, drift, platform health (core.monitoring)
    # the lab's notification feed: ``notifications.notify(users, kind, message, link=None)``
    notifications: "Notifications | None" = None
    # read models over several capabilities' public queries (built once jobs and deployments are)
    progress: "ProjectProgress | None" = None  # a project's progress (core.project_progress)
    overview: "AdminOverview | None" = None  # the admin page's data (core.admin_overview)


class MlopsService(Application):
    name = "jupyter-mlops-service"
    description = "The jupyter-mlops control plane, run as a JupyterHub service."
    version = __version__

    data_dir = Unicode(
        help="""Directory of the control plane's state (its database lives in ``control/``).

        The embedded default passes ``<data dir>``; on Kubernetes it is a mounted volume.
        """,
    ).tag(config=True)

    service_url = Unicode(
        help="URL this service listens on. Defaults to the hub-provided $JUPYTERHUB_SERVICE_URL.",
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self):
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")

    service_prefix = Unicode(
        help="URL prefix the proxy routes here. Defaults to $JUPYTERHUB_SERVICE_PREFIX.",
    ).tag(config=True)

    @default("service_prefix")
    def _default_service_prefix(self):
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/mlops/")

    gpu_devices = Any(
        None,
        allow_none=True,
        help="""The GPU inventory. ``None`` discovers GPUs with NVML (an empty inventory with
        the reason on machines without the NVIDIA driver); a list of dicts configures simulated or
        pinned devices, e.g. ``[{"name": "A100", "memory_total_mb": 40960}] * 2``.
        Also accepted as a JSON string on the command line.
        """,
    ).tag(config=True)

    gpu_devices_file = Unicode(
        "",
        help="""A JSON file listing simulated devices as ``gpu_devices`` does, read again at
        every inventory reading, so a demo or a test changes their utilisation
        (``utilization_pct``) while the platform runs. Wins over ``gpu_devices``.""",
    ).tag(config=True)

    cookie_secret_file = Unicode(
        help="File holding the secret that signs this service's OAuth cookies (created 0600).",
    ).tag(config=True)

    @default("cookie_secret_file")
    def _default_cookie_secret_file(self):
        return str(Path(self.data_dir or ".") / "control" / "cookie_secret")

    port = Integer(0, help="Port to listen on; 0 takes it from service_url.").tag(config=True)

    db_url = Unicode(
        help="""SQLAlchemy URL of the control plane database. Defaults to SQLite at
        ``<data_dir>/control/mlops.sqlite``; use a Postgres URL on Kubernetes.""",
    ).tag(config=True)

    @default("db_url")
    def _default_db_url(self):
        return f"sqlite:///{Path(self.data_dir or '.').resolve() / 'control' / 'mlops.sqlite'}"

    config_file = Unicode(
        "",
        help="""A Python config file of the control plane's settings: ``c.JobSettings.*``
        (limits, timeouts), ``c.LocalDeployBackend.*``, ``c.AccountSettings.*``,
        ``c.PlatformAdmin.*``, ``c.MonitoringSettings.*``... ``jupyter-mlops up --config FILE``
        passes its file here too, so one file configures the hub and the control plane (each
        ignores the other's sections). What the hub passes on the command line wins over the
        file.""",
    ).tag(config=True)

    notifications_per_user = Integer(
        200,
        help="""How many notifications each person's feed keeps (the oldest go first). The lab
        shows new ones as they come; the rest is history a few hundred entries cover, and a
        bound keeps a chatty sweep from growing the database.""",
    ).tag(config=True)

    aliases = {
        "data-dir": "MlopsService.data_dir",
        "gpu-devices": "MlopsService.gpu_devices",
        "config": "MlopsService.config_file",
    }

    def initialize(self, argv=None):
        self.parse_command_line(argv)
        if self.config_file:
            path = Path(self.config_file)
            if not path.is_file():
                raise SystemExit(f"MlopsService.config_file {path} does not exist")
            self.load_config_file(path.name, path=str(path.parent))
            self.update_config(self.cli_config)  # the command line wins over the file

    def _cookie_secret(self) -> bytes:
        path = Path(self.cookie_secret_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(os.urandom(32).hex())
        return path.read_text().strip().encode()

    def build_context(self) -> ServiceContext:
        devices = self.gpu_devices
        if isinstance(devices, str):
            devices = json.loads(devices)
        if self.gpu_devices_file:
            devices = self.gpu_devices_file
        data_dir = Path(self.data_dir or ".").resolve()
        (data_dir / "control").mkdir(parents=True, exist_ok=True)
        db = Database(self.db_url)
        inventory = inventory_from_config(devices)
        context = ServiceContext(
            data_dir=data_dir,
            gpu_inventory=inventory,
            db=db,
            projects=Projects(db),
            gpu_allocator=GpuAllocator(db, inventory),
            datasets=DatasetCatalog(db, Projects(db)),
            store=store_from_settings(StoreSettings(parent=self), str(data_dir)),
            notifications=Notifications(db, self.notifications_per_user),
        )
        context.admin = PlatformAdmin(db, context.projects, context.gpu_allocator, inventory,
                                      parent=self)
        from .gpu_reclaim import GpuCulling

        context.gpu_culling = GpuCulling(context, parent=self)
        return context

    def make_app(self) -> web.Application:
        self.context = self.build_context()
        from ..backends.deploy_local import build_deployments

        self.context.deployments = build_deployments(self, self.context.data_dir,
                                                     self.context.db, self.context.projects)
        from .jobs_platform import build_jobs

        self.context.jobs = build_jobs(self, self.context)
        self._build_read_models(self.context)
        from .monitoring import MonitoringSettings, build_monitoring

        self.monitoring_settings = MonitoringSettings(parent=self)
        self.context.monitoring = build_monitoring(self.monitoring_settings, self.context)
        # the GPU servers' telemetry reads their processes through platform health
        self.context.admin.server_use = self.context.monitoring.health.user_server_use
        from .notices import connect_notices

        connect_notices(self.context, self.service_prefix)
        prefix = self.service_prefix
        handlers = routes(prefix, self.context) + [
            (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
        ]
        return web.Application(
            handlers,
            cookie_secret=self._cookie_secret(),
            # HubOAuth checks xsrf itself for cookie-authenticated requests (and only for those);
            # tornado's own check would run before token authentication and refuse token POSTs.
            xsrf_cookies=False,
            static_path=str(Path(__file__).parent / "static"),
            static_url_prefix=url_path_join(prefix, "static/"),
        )

    @staticmethod
    def _build_read_models(context: ServiceContext) -> None:
        from ..core.admin_overview import AdminOverview
        from ..core.project_progress import ProjectProgress
        from .platform_admin import role_of

        store = context.jobs.jobs.store if context.jobs else None
        context.progress = ProjectProgress(
            context.projects, usage=context.admin.usage if context.admin else None,
            jobs=store, deployments=context.deployments)
        context.overview = AdminOverview(
            context.admin, role_of, allocator=context.gpu_allocator,
            inventory=context.gpu_inventory, projects=context.projects,
            culling=context.gpu_culling, jobs=store, deployments=context.deployments)

    def start(self):
        try:
            asyncio.run(self._serve())
        except KeyboardInterrupt:
            # The hub stops its services with SIGINT: a normal stop, not a crash to trace.
            # asyncio.run has cancelled every task by now, so their clean-up has run.
            self.log.info("control plane stopped")

    async def _serve(self):
        app = self.make_app()
        from .store_sweep import sweep_at_start

        # before any publish can start: partial uploads and half-built shared versions go
        await asyncio.to_thread(sweep_at_start, self.context, StoreSettings(parent=self))
        await self.context.deployments.recover()  # take over model servers still running
        self.context.gpu_culling.start()
        self.context.jobs.runner.start()  # jobs outlive this process; a restart re-attaches
        from .monitoring import run_monitoring

        self._monitoring_task = asyncio.get_running_loop().create_task(
            run_monitoring(self.context.monitoring, self.monitoring_settings))
        url = urlparse(self.service_url)
        app.listen(self.port or url.port, url.hostname)
        from .publish_socket import serve_publish_socket

        sock = serve_publish_socket(self, self.context, asyncio.get_running_loop())
        self.log.info("same-machine publishing on %s", sock or "(off: not a local store)")
        self.log.info("jupyter-mlops control plane %s listening on %s", __version__,
                      self.service_url)
        await asyncio.Event().wait()


main = MlopsService.launch_instance
