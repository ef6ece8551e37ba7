"""The embedded default: one isolated process tree per user on this machine.

What holds, and when:

- Hub running as root (the supported production mode on one machine): each hub user gets a
  system account (``<system_user_prefix><name>``, created on first spawn with ``useradd``) whose
  home is ``<workspace_root>/<name>`` (mode 0700, owned by that account). The server runs as that
  account, with umask 077: another user's processes can neither read the workspace nor signal
  the server (different uid). The shared dataset directory belongs to root and is not writable
  by others, so users read it but cannot change it (ordinary Unix permissions: there is no
  read-only bind mount without mount namespaces).
- CPU and memory limits of the profile are enforced with cgroups (v2, or the v1 ``memory`` and
  ``cpu`` controllers) when the hub may create cgroups; otherwise they are only announced to the
  server (``MEM_LIMIT``/``CPU_LIMIT``) and a warning is logged. ``RLIMIT_AS`` is not used: it
  limits address space, not memory, and breaks CUDA and JupyterLab's own reservations.
- Hub not running as root: every server runs as the hub's own user. There is no isolation
  between users then (they can read each other's workspaces); use it for a single person or
  for demos only.

GPUs are assigned exclusively by the control plane, asked over its API (``gpu_accounting``;
``CUDA_VISIBLE_DEVICES`` with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so indices match NVML's, and
``NVIDIA_VISIBLE_DEVICES`` with the UUIDs), released when the server stops, and kept in the
control plane's database, not the hub's, so a restarted hub never hands a device out twice.
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import psutil
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Unicode, default

import jupyter_mlops
from jupyter_mlops.backends.accounts import (AccountError, SystemAccount, ensure_account,
                                             isolation_applies, make_traversable,
                                             system_username, unreachable_part)
from jupyter_mlops.backends.limits import CgroupLimits, platform_tag

from .profiles import Profile, ProfileSpawnerMixin, platform_env, spawn_error


class MlopsLocalSpawner(ProfileSpawnerMixin, LocalProcessSpawner):
    """Starts each user's JupyterLab as a local process with a profile, GPUs and isolation."""

    workspace_root = Unicode(
        help="""Directory holding one workspace (home) per user: ``<workspace_root>/<username>``.
        Must be traversable by other users (the hub fixes missing o+x on its ancestors when
        ``make_paths_traversable``).""",
    ).tag(config=True)

    shared_dataset_dir = Unicode(
        help="""The shared cell-image dataset root, visible to every server read-only, announced
        in ``$JUPYTER_MLOPS_DATASETS`` and linked as ``~/datasets``.""",
    ).tag(config=True)

    control_plane_url = Unicode(
        help="""URL at which user servers reach the control plane service (internal address,
        including the service prefix), passed as ``$JUPYTER_MLOPS_CONTROL_PLANE_URL``.""",
    ).tag(config=True)

    mlflow_url = Unicode(
        help="""URL at which user servers reach MLflow through the hub-authenticated gateway,
        passed as ``$MLFLOW_TRACKING_URI`` (the server's hub token becomes
        ``$MLFLOW_TRACKING_TOKEN``).""",
    ).tag(config=True)

    isolate_users = Bool(
        True,
        help="""When the hub runs as root, run each server as its own system account (created
        on first spawn). Without root this has no effect: servers run as the hub's user.""",
    ).tag(config=True)

    system_user_prefix = Unicode(
        "jm-",
        help="""Prefix of the system accounts created for hub users (``jm-alice``), so they
        never collide with existing accounts such as ``root`` or ``admin``.""",
    ).tag(config=True)

    make_paths_traversable = Bool(
        True,
        help="""Add the search bit (o+x, never o+r) to ancestors of the workspace root and the
        dataset directory when missing, so the per-user accounts can reach them (e.g. a data
        directory under /tmp/pytest-of-root, mode 0700). Set False to manage it yourself; the
        spawn then fails with the path to fix.""",
    ).tag(config=True)

    cgroup_root = Unicode(
        "/sys/fs/cgroup",
        help="""Where cgroups are mounted. CPU and memory limits of profiles become cgroups
        under ``<cgroup_root>[/<controller>]/jupyter-mlops-user-<platform>-<account>`` when
        writable; ``<platform>`` is derived from ``workspace_root``, so two platforms on one
        machine never share (and overwrite) a user's group.""",
    ).tag(config=True)

    @default("cmd")
    def _default_cmd(self):
        # The single-user server of the same environment as the hub, whatever PATH says.
        return [str(Path(sys.executable).parent / "jupyterhub-singleuser")]

    # --- who the server runs as ----------------------------------------------------------------

    @property
    def isolated(self) -> bool:
        return isolation_applies(self.isolate_users)

    @property
    def account(self) -> str:
        return system_username(self.system_user_prefix, self.user.name)

    @property
    def cgroup_name(self) -> str:
        """The user's server group, of this platform only (``limits.platform_tag``)."""
        return f"user-{platform_tag(self.workspace_root or '/tmp')}-{self.account}"

    def _workspace(self) -> Path:
        return Path(self.workspace_root or "/tmp") / self.user.name

    def _ensure_account(self) -> SystemAccount:
        try:
            return ensure_account(self.account, self._workspace(), self.user.name, self.log)
        except AccountError as e:
            raise spawn_error(500, str(e)) from None

    def _prepare_paths(self) -> None:
        """Workspace root and dataset reachable by the accounts; the dataset not writable."""
        root = Path(self.workspace_root or "/tmp")
        root.mkdir(parents=True, exist_ok=True)
        targets = [root]
        if self.shared_dataset_dir:
            ds = Path(self.shared_dataset_dir)
            ds.mkdir(parents=True, exist_ok=True)
            # Read-only for users: root owns it, nobody else may write (entries keep theirs).
            os.chown(ds, 0, 0)
            ds.chmod(0o755)
            targets.append(ds)
        for target in targets:
            try:
                make_traversable(target, self.make_paths_traversable, self.log)
            except AccountError as e:
                raise spawn_error(500, str(e)) from None
        root.chmod(0o711)  # others may enter their own home but not list everyone's
        python_env = Path(self.cmd[0]).parent
        if (bad := unreachable_part(python_env)) is not None:
            raise spawn_error(500, f"the Python environment {python_env} is not usable by "
                                   f"other users: {bad} has no o+x. Install the platform in a "
                                   "world-readable place (see the README)")

    def make_preexec_fn(self, name):
        cgroup = self._cgroup
        home = str(self._workspace())
        if not self.isolated:
            def preexec():
                if cgroup:
                    cgroup.join()
                os.chdir(home)
            return preexec
        # Still root in the child: join the cgroup first, then drop privileges for good.
        return SystemAccount.lookup(self.account, self._workspace()).preexec(
            before=cgroup.join if cgroup else None, cwd=home)

    def user_env(self, env):
        env["USER"] = self.account if self.isolated else self.user.name
        env["JUPYTERHUB_USER_ACCOUNT"] = env["USER"]
        env["HOME"] = str(self._workspace())
        env["SHELL"] = "/bin/bash"
        return env

    def get_args(self):
        args = super().get_args()
        if os.geteuid() == 0 and not self.isolated:
            # jupyter_server refuses to start as root without it (CI runs as root).
            args.append("--allow-root")
        return args

    def get_env(self):
        env = super().get_env()
        env.update(platform_env(datasets=self.shared_dataset_dir,
                                control_plane_url=self.control_plane_url,
                                mlflow_url=self.mlflow_url, profile=self.profile_slug))
        if self.mlflow_url:
            env["MLFLOW_TRACKING_TOKEN"] = self.api_token
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        # One environment: the terminal finds the kernel's python, pip, mlflow and
        # jupyter-mlops first, and every IPython kernel loads the %mlops magics at start.
        python_env = str(Path(self.cmd[0]).parent)
        env["PATH"] = os.pathsep.join([python_env, env.get("PATH") or os.defpath])
        env["PYTHONSTARTUP"] = str(Path(jupyter_mlops.__file__).parent / "magics"
                                   / "kernel_startup.py")
        # Indices as NVML numbers them (PCI order), not CUDA's default fastest-first order.
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in self.gpu_indices)
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(self.gpu_uuids) or "void"
        return env

    # --- state (survives hub restarts) ------------------------------------------------------------

    gpu_indices: list[int] = []
    gpu_uuids: list[str] = []
    profile_slug: str = ""
    _cgroup: CgroupLimits | None = None
    _exit_task: asyncio.Task | None = None

    def get_state(self):
        state = super().get_state()
        if self.gpu_uuids:
            state["gpu_uuids"] = self.gpu_uuids
            state["gpu_indices"] = self.gpu_indices
        if self.profile_slug:
            state["profile"] = self.profile_slug
        return state

    def load_state(self, state):
        super().load_state(state)
        self.gpu_uuids = list(state.get("gpu_uuids", []))
        self.gpu_indices = list(state.get("gpu_indices", []))
        self.profile_slug = state.get("profile", "")

    def clear_state(self):
        super().clear_state()
        self.gpu_uuids, self.gpu_indices, self.profile_slug = [], [], ""

    # --- lifecycle ------------------------------------------------------------------------------

    def _apply_profile(self, profile: Profile) -> None:
        self.profile_slug = profile.slug
        self.cpu_limit = profile.cpu_limit
        self.cpu_guarantee = profile.cpu_guarantee
        self.mem_limit = profile.mem_limit
        self.mem_guarantee = profile.mem_guarantee
        self._cgroup = None
        if os.geteuid() == 0 and (profile.cpu_limit or profile.mem_limit or
                                  profile.cpu_guarantee):
            cg = CgroupLimits.create(self.cgroup_root, self.cgroup_name, cpu=self.cpu_limit,
                                     memory=self.mem_limit, cpu_weight=self.cpu_guarantee,
                                     log=self.log)
            if cg is None:
                self.log.warning("No writable cgroups under %s: limits of profile %s are "
                                 "announced to %s's server but not enforced", self.cgroup_root,
                                 profile.slug, self.user.name)
            self._cgroup = cg

    async def start(self):
        # Everything that can refuse the spawn happens first, within JupyterHub's first second,
        # so the spawn page shows the reason instead of a progress bar that times out.
        t0 = time.perf_counter()
        profile = self.chosen_profile()
        if profile.gpus and self.gpu_accounting is None:
            # Without the control plane's allocator nothing would keep two servers off a device.
            raise spawn_error(503, f"Cannot start {profile.display_name}: GPU allocation is "
                                   "not configured (MlopsLocalSpawner.gpu_api_url is empty)")
        gpus = await self.allocate_gpus(profile)
        try:
            self.gpu_indices = [g.index for g in gpus]
            self.gpu_uuids = [g.uuid for g in gpus]
            self._prepare_paths()
            if self.isolated:
                self._ensure_account()
            else:
                self._workspace().mkdir(parents=True, exist_ok=True)
            self._link_datasets()
            self._apply_profile(profile)
            self.notebook_dir = str(self._workspace())
            # What this spawner adds before the process starts (benchmarks/spawn.py reads it).
            self.log.info("Prepared %s's server: profile %s, GPUs [%s], %s, in %.1f ms",
                          self.user.name, profile.slug, ",".join(map(str, self.gpu_indices)),
                          f"as {self.account}" if self.isolated else "not isolated",
                          (time.perf_counter() - t0) * 1000)
            address = await super().start()
            self._reap_on_exit(self.proc)
            return address
        except BaseException:
            await self.release_gpus()
            self.gpu_indices, self.gpu_uuids = [], []
            raise

    def _link_datasets(self) -> None:
        if not self.shared_dataset_dir:
            return
        link = self._workspace() / "datasets"
        if not link.is_symlink() and not link.exists():
            link.symlink_to(self.shared_dataset_dir)

    def _reap_on_exit(self, proc) -> None:
        """Reap the server the moment it exits, and tell the hub when it was running.

        The hub only polls every ``poll_interval`` (30 s): a server that ended by itself
        (File > Shut Down, a crash) stayed a zombie ``jupyterhub-singleuser`` until then, still
        shown as ready and holding its GPUs. A pidfd turns readable when the process ends.
        """
        try:
            fd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # no pidfd (Linux < 5.3): the hub's poll reaps it
            return
        loop = asyncio.get_running_loop()

        def exited():
            loop.remove_reader(fd)
            os.close(fd)
            proc.poll()  # reaps it
            # Running and watched (not being stopped by the hub, which then polls itself):
            # the hub's own poll callbacks record the stop and give the GPUs back.
            if self.proc is proc and self._poll_callback is not None:
                self._exit_task = loop.create_task(self.poll_and_notify())

        loop.add_reader(fd, exited)

    async def _signal(self, sig):
        """As the hub's, but a zombie (a server that outlived a hub restart and exited since,
        not yet reaped by init) is gone, not running."""
        if sig == 0:
            try:
                if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                    return False
            except psutil.Error:
                pass
        return await super()._signal(sig)

    async def stop(self, now=False):
        try:
            await super().stop(now=now)
        finally:
            await self.release_gpus()
            if self._cgroup:
                self._cgroup.remove()
