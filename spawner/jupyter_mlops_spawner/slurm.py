"""Notebook servers as Slurm jobs: batchspawner's ``SlurmSpawner`` over the same profiles.

For labs whose GPU servers are a Slurm cluster: the user picks a profile on the spawn page as
with the local and Kubernetes spawners, and the server becomes one ``sbatch`` job of the user's
own account (``jm-alice``, the account the local backends use), in the user's workspace on the
shared filesystem, with the shared dataset announced in ``$JUPYTER_MLOPS_DATASETS``.

The profile becomes Slurm's request (:func:`slurm_request`, pure): ``gpus`` + ``gpu_type`` ->
``--gres=gpu:TYPE:N`` (the type in Slurm's ``gres.conf`` spelling, lower case unless
``gres_types`` maps it), ``cpu_limit`` -> ``--cpus-per-task``, ``mem_limit`` -> ``--mem``.
Slurm places the server and its GPUs: this spawner asks the platform for no device (the
hub machine's inventory says nothing of the cluster's), so quotas of servers on the cluster are
Slurm's (QOS, associations); jobs keep the platform's quotas (``SlurmJobBackend``).
"""
from __future__ import annotations

import math

from batchspawner import SlurmSpawner
from traitlets import Dict, Unicode, default

from jupyter_mlops.backends.accounts import DEFAULT_PREFIX, system_username

from .profiles import Profile, ProfileSpawnerMixin, platform_env, spawn_error


def slurm_request(profile: Profile, *, gres_types: dict | None = None) -> dict:
    """batchspawner's ``req_*`` values (without the prefix) of a profile. No I/O."""
    req = {"gres": "", "nprocs": "", "memory": ""}
    if profile.gpus:
        gtype = (gres_types or {}).get(profile.gpu_type or "",
                                       (profile.gpu_type or "").lower())
        req["gres"] = f"gpu:{gtype}:{profile.gpus}" if gtype else f"gpu:{profile.gpus}"
    if profile.cpu_limit:
        req["nprocs"] = str(math.ceil(profile.cpu_limit))
    if profile.mem_limit:
        req["memory"] = profile.mem_limit
    return req


class MlopsSlurmSpawner(ProfileSpawnerMixin, SlurmSpawner):
    """SlurmSpawner with jupyter-mlops profiles, per-user accounts and the shared dataset."""

    workspace_root = Unicode(
        "",
        help="""Users' workspaces on the shared filesystem, ``<workspace_root>/<name>``: the
        server's home and working directory (the same path on every node, and the control
        plane's ``c.JobSettings.workspace_root``).""",
    ).tag(config=True)

    shared_dataset_dir = Unicode(
        "",
        help="""The shared dataset as the compute nodes mount it (read-only), announced to the
        server in ``$JUPYTER_MLOPS_DATASETS``.""",
    ).tag(config=True)

    system_user_prefix = Unicode(
        DEFAULT_PREFIX,
        help="""Prefix of the users' accounts (``jm-alice``), which must exist with the same uid
        on the hub host and every node (LDAP, sssd): the server runs as that account.""",
    ).tag(config=True)

    gres_types = Dict(
        {},
        help="""A profile's ``gpu_type`` -> the GRES type in the cluster's ``gres.conf``, e.g.
        ``{"A100": "a100_80g"}``. Types not listed are lower-cased (``A100`` -> ``a100``).""",
    ).tag(config=True)

    control_plane_url = Unicode(
        "", help="""The control plane as the nodes reach it, with its service prefix
        (``$JUPYTER_MLOPS_CONTROL_PLANE_URL``).""").tag(config=True)

    mlflow_url = Unicode(
        "", help="""MLflow through the hub-authenticated gateway, as the nodes reach it
        (``$MLFLOW_TRACKING_URI``).""").tag(config=True)

    @default("exec_prefix")
    def _default_exec_prefix(self):
        # The hub runs as root: sbatch as the user's account (sudo may not be installed).
        return "runuser -u {username} --"

    @default("req_username")
    def _req_username_default(self):
        return system_username(self.system_user_prefix, self.user.name)

    @default("req_homedir")
    def _req_homedir_default(self):
        if self.workspace_root:
            return f"{self.workspace_root.rstrip('/')}/{self.user.name}"
        return super()._req_homedir_default()

    profile_slug: str = ""  # the profile of the server being started (apply_profile)

    @property
    def gpu_accounting(self):
        return None  # Slurm places GPUs on its nodes (see the module docstring)

    def apply_profile(self, profile: Profile) -> None:
        """The profile's request into batchspawner's ``req_*`` traits."""
        for key, value in slurm_request(profile, gres_types=self.gres_types).items():
            setattr(self, f"req_{key}", value)
        self.profile_slug = profile.slug
        self.notebook_dir = self.req_homedir

    def user_env(self, env):
        # batchspawner looks the hub name up in the password database; the account differs.
        env.update(USER=self.req_username, HOME=self.req_homedir, SHELL="/bin/bash")
        return env

    def get_env(self):
        env = super().get_env()
        # Slurm names the GPUs it grants itself (CUDA_VISIBLE_DEVICES on the node)
        env.update(platform_env(datasets=self.shared_dataset_dir,
                                control_plane_url=self.control_plane_url,
                                mlflow_url=self.mlflow_url, profile=self.profile_slug))
        return env

    async def start(self):
        profile = self.chosen_profile()  # refusals before anything reaches Slurm
        self.apply_profile(profile)
        try:
            return await super().start()
        except RuntimeError as e:
            raise spawn_error(500, f"Cannot start {profile.display_name} on Slurm: {e}")
