"""The one profile model, shared by the local and the Kubernetes spawner.

A profile is what a user picks on the spawn page: resources (CPU, memory, GPUs), where to run
(GPU type, node selector, tolerations, image on Kubernetes) and who may pick it (groups or hub
roles). :class:`ProfileSpawnerMixin` turns the configured list into the spawn options form,
refuses a profile the user may not use (also when posted directly, by form or REST) and asks the
control plane (``gpu_accounting``, the owner of every GPU allocation) for devices and quota room
before anything starts, so "no GPU free" and "quota exceeded" are answered at once with a reason
instead of a spawn timeout.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field, fields
from functools import cached_property

import asyncio

from tornado import web
from traitlets import Bool, Float, List, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from jupyter_mlops.backends.kube_pods import GPU_RESOURCE_RE
from jupyter_mlops.core.errors import MlopsError

from .gpu_accounting import ControlPlaneGpus

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MEM_RE = re.compile(r"^\d+(\.\d+)?[KMGT]?$")


@dataclass(frozen=True)
class Profile:
    """One choice on the spawn page. Empty ``allowed_groups`` and ``allowed_roles``: everyone."""

    slug: str
    display_name: str
    description: str = ""
    cpu_guarantee: float | None = None
    cpu_limit: float | None = None
    mem_guarantee: str | None = None  # "2G", JupyterHub's ByteSpecification syntax
    mem_limit: str | None = None
    gpus: int = 0
    gpu_type: str | None = None  # substring of the device name locally; node label on k8s
    node_selector: dict = field(default_factory=dict)
    tolerations: tuple = ()
    image: str | None = None  # Kubernetes only
    gpu_resource: str | None = None  # Kubernetes: a MIG slice, "nvidia.com/mig-1g.10gb"
    shm_size: str | None = None  # Kubernetes: a memory-backed /dev/shm of this size, "8G"
    runtime_class: str | None = None  # Kubernetes: the pod's runtimeClassName
    allowed_groups: tuple[str, ...] = ()
    allowed_roles: tuple[str, ...] = ()
    default: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> "Profile":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"profile {d.get('slug')!r}: unknown keys {sorted(unknown)}; "
                             f"known: {sorted(known)}")
        d = dict(d)
        slug = d.get("slug", "")
        if not SLUG_RE.match(str(slug)):
            raise ValueError(f"profile slug {slug!r}: 1-63 lowercase letters, digits, dashes")
        d.setdefault("display_name", slug)
        gpus = d.get("gpus", 0)
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise ValueError(f"profile {slug!r}: gpus must be a whole number >= 0")
        if d.get("gpu_resource") is not None and not GPU_RESOURCE_RE.match(
                str(d["gpu_resource"])):
            raise ValueError(f"profile {slug!r}: gpu_resource is nvidia.com/gpu or a MIG "
                             "resource like nvidia.com/mig-1g.10gb")
        if d.get("runtime_class") is not None and not SLUG_RE.match(str(d["runtime_class"])):
            raise ValueError(f"profile {slug!r}: runtime_class is the name of a RuntimeClass")
        for key in ("mem_guarantee", "mem_limit", "shm_size"):
            if d.get(key) is not None and not MEM_RE.match(str(d[key])):
                raise ValueError(f"profile {slug!r}: {key} like '4G' or '512M'")
        for key in ("cpu_guarantee", "cpu_limit"):
            if d.get(key) is not None:
                d[key] = float(d[key])
        for key in ("allowed_groups", "allowed_roles", "tolerations"):
            d[key] = tuple(d.get(key) or ())
        d["node_selector"] = dict(d.get("node_selector") or {})
        return cls(**d)

    def allows(self, groups, roles) -> bool:
        if not self.allowed_groups and not self.allowed_roles:
            return True
        return bool(set(groups) & set(self.allowed_groups) or set(roles) & set(self.allowed_roles))

    def resources_text(self) -> str:
        parts = []
        if self.cpu_limit:
            parts.append(f"{self.cpu_limit:g} CPU")
        if self.mem_limit:
            parts.append(f"{self.mem_limit}B RAM")
        parts.append(f"{self.gpus} GPU" + ("s" if self.gpus != 1 else "")
                     + (f" ({self.gpu_type})" if self.gpu_type else ""))
        return ", ".join(parts)


DEFAULT_PROFILES = [
    {"slug": "cpu", "display_name": "CPU only", "default": True,
     "description": "Exploring data and small experiments.", "cpu_limit": 2, "mem_limit": "8G"},
    {"slug": "gpu-1", "display_name": "1 GPU", "gpus": 1,
     "description": "Training and tuning on one GPU.", "cpu_limit": 4, "mem_limit": "16G"},
]


_ACCOUNTING: dict[tuple, ControlPlaneGpus] = {}


# Fixed variable at which every user server (local, Slurm or Kubernetes) finds the shared dataset.
DATASETS_ENV = "JUPYTER_MLOPS_DATASETS"


def platform_env(*, datasets: str, control_plane_url: str, mlflow_url: str,
                 profile: str) -> dict:
    """What a server started on this machine or on a cluster node is told of the platform:
    the shared dataset, the control plane, MLflow (the gateway) and its profile, so that the
    lab's status check can tell a CPU profile from a GPU it cannot see. Unset values are left
    out. No I/O."""
    env = {DATASETS_ENV: datasets, "JUPYTER_MLOPS_CONTROL_PLANE_URL": control_plane_url,
           "MLFLOW_TRACKING_URI": mlflow_url, "JUPYTER_MLOPS_PROFILE": profile}
    return {name: value for name, value in env.items() if value}


def spawn_error(status: int, message: str) -> web.HTTPError:
    """An error JupyterHub shows as it is: re-rendered spawn form, progress page or API body."""
    e = web.HTTPError(status, message)
    e.jupyterhub_message = message  # used by the spawn form instead of "HTTP 403: ..."
    return e


class ProfileSpawnerMixin(Configurable):
    """Profiles, the options form and GPU allocation for any JupyterHub spawner.

    Subclasses call :meth:`chosen_profile` and :meth:`allocate_gpus` first thing in ``start``
    (each raises an error the spawn page shows, before anything starts) and
    :meth:`release_gpus` in ``stop``.
    """

    profiles = List(
        DEFAULT_PROFILES,
        help="""The profiles users pick from on the spawn page (a list of dicts).

        Keys: ``slug`` (required), ``display_name``, ``description``, ``cpu_guarantee``,
        ``cpu_limit`` (cores), ``mem_guarantee``, ``mem_limit`` ("8G"), ``gpus`` (count),
        ``gpu_type`` (matches the device name locally, e.g. "A100"; on Kubernetes the node label
        ``nvidia.com/gpu.product``), ``node_selector``, ``tolerations``, ``image``,
        ``gpu_resource`` (a MIG slice the GPUs are asked as, e.g. ``nvidia.com/mig-1g.10gb``),
        ``shm_size`` (a memory-backed ``/dev/shm``, e.g. "8G", for PyTorch data loaders),
        ``runtime_class`` (the pod's RuntimeClass, e.g. "nvidia") (these four: Kubernetes),
        ``allowed_groups`` / ``allowed_roles`` (hub groups or roles that may use it; both empty:
        everyone), ``default``. Example::

            c.MlopsLocalSpawner.profiles = [
                {"slug": "cpu", "display_name": "CPU only", "default": True},
                {"slug": "a100-2", "display_name": "2 x A100", "gpus": 2, "gpu_type": "A100",
                 "allowed_groups": ["deep-learning"], "mem_limit": "64G"},
            ]
        """,
    ).tag(config=True)

    @validate("profiles")
    def _validate_profiles(self, proposal):
        try:
            parsed = [Profile.from_dict(p) for p in proposal["value"]]
        except (ValueError, TypeError) as e:
            raise TraitError(str(e)) from None
        slugs = [p.slug for p in parsed]
        if len(set(slugs)) != len(slugs):
            raise TraitError(f"profile slugs must be unique: {slugs}")
        return proposal["value"]

    gpu_api_url = Unicode(
        "",
        help="""URL of the control plane service (with its prefix, e.g.
        ``http://127.0.0.1:10101/services/mlops/``) where the spawner asks for the GPUs of a
        server (``POST api/gpus/allocations/servers``). Set by ``configure_hub`` with
        ``gpu_api_token``; the hub then keeps no GPU state of its own.""",
    ).tag(config=True)

    gpu_api_token = Unicode(
        "",
        help="""Hub token of the ``mlops-spawner`` service (scope ``custom:mlops:spawner``, the
        only one that may allocate for servers), sent with ``gpu_api_url``'s calls.""",
    ).tag(config=True)

    gpu_queue = Bool(
        True,
        help="""With no GPU free, a server asking for a GPU profile waits in the control plane's
        GPU queue (fair share with jobs; the spawn page shows its place and who holds the
        GPUs) and starts when a GPU frees, instead of being refused. Quotas still refuse at
        once. Only with ``gpu_api_url`` (the control plane runs the queue).""",
    ).tag(config=True)

    gpu_queue_timeout = Float(
        1800.0,
        help="""Seconds a server may wait in the GPU queue before the spawn fails with the
        reason. Capped at ``start_timeout`` - 60 s (JupyterHub gives up on a start after
        ``start_timeout``; ``configure_hub`` raises it for this).""",
    ).tag(config=True)

    # The spawner traits below are JupyterHub's; defaults set here (a mixin comes first in the
    # spawners' MRO) so every spawner with profiles offers the same form.

    @default("options_form")
    def _default_options_form(self):
        return self.mlops_options_form

    @default("options_from_form")
    def _default_options_from_form(self):
        return self.mlops_options_from_form

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # The profile is checked and applied in start(), where a refusal can name its reason.
        return lambda spawner, user_options: None

    # --- profiles -----------------------------------------------------------------------------

    @property
    def all_profiles(self) -> list[Profile]:
        """Every profile of ``profiles`` (not named ``profile_list``: that is kubespawner's
        trait, which the Kubernetes spawner fills from these)."""
        return [Profile.from_dict(p) for p in self.profiles]

    def _user_groups_and_roles(self) -> tuple[set[str], set[str]]:
        groups = {g.name for g in getattr(self.user, "groups", None) or []}
        roles = {r.name for r in getattr(self.user, "roles", None) or []}
        for g in getattr(self.user, "groups", None) or []:
            roles |= {r.name for r in getattr(g, "roles", None) or []}
        return groups, roles

    def allowed_profiles(self) -> list[Profile]:
        groups, roles = self._user_groups_and_roles()
        return [p for p in self.all_profiles if p.allows(groups, roles)]

    def chosen_profile(self) -> Profile:
        """The profile in ``user_options`` (or the default), refused if not allowed."""
        allowed = self.allowed_profiles()
        slug = (self.user_options or {}).get("profile")
        if isinstance(slug, list):  # raw form data
            slug = slug[0] if slug else None
        if not slug:
            if not allowed:
                raise spawn_error(403, f"no server profile is available to {self.user.name}; "
                                       "ask an administrator to add you to a group")
            return next((p for p in allowed if p.default), allowed[0])
        if not isinstance(slug, str):
            raise spawn_error(400, "profile must be a profile name")
        if slug not in {p.slug for p in self.all_profiles}:
            raise spawn_error(400, f"unknown profile {slug!r}")
        for p in allowed:
            if p.slug == slug:
                return p
        raise spawn_error(403, f"profile {slug!r} is not available to {self.user.name} "
                               f"(allowed for groups/roles: "
                               f"{', '.join(self._restriction(slug)) or '-'})")

    def _restriction(self, slug: str) -> list[str]:
        p = next(p for p in self.all_profiles if p.slug == slug)
        return [*p.allowed_groups, *p.allowed_roles]

    # --- GPU accounting -----------------------------------------------------------------------

    @cached_property
    def gpu_accounting(self) -> ControlPlaneGpus | None:
        """Who hands out GPUs: the control plane's API, else nobody (the scheduler decides)."""
        if not (self.gpu_api_url and self.gpu_api_token):
            return None
        # One client per control plane in this process, shared by all spawners.
        key = (self.gpu_api_url, self.gpu_api_token)
        if key not in _ACCOUNTING:
            _ACCOUNTING[key] = ControlPlaneGpus(*key)
        return _ACCOUNTING[key]

    @property
    def gpu_owner(self) -> str:
        """The allocation owner name of this server: ``alice`` or ``alice/named-server``."""
        return self.user.name + (f"/{self.name}" if self.name else "")

    async def allocate_gpus(self, profile: Profile):
        """Devices for ``profile`` (``[]`` without GPUs), or a spawn error with the reason."""
        if profile.gpus == 0 or self.gpu_accounting is None:
            return []
        groups, _ = self._user_groups_and_roles()
        acc = self.gpu_accounting
        try:
            if self.gpu_queue:
                self._gpu_queue_state = "waiting"
                try:
                    return await acc.wait_for(
                        self.gpu_owner, user=self.user.name, groups=groups,
                        count=profile.gpus, gpu_type=profile.gpu_type,
                        on_wait=self._queued, timeout=min(self.gpu_queue_timeout,
                                                          max(self.start_timeout - 60, 1)))
                finally:
                    self._gpu_queue_state = "done"
            return await acc.allocate(self.gpu_owner, user=self.user.name, groups=groups,
                                      count=profile.gpus, gpu_type=profile.gpu_type)
        except MlopsError as e:
            raise spawn_error(e.status, f"Cannot start {profile.display_name}: {e.message}")

    _gpu_queue_state = ""  # "waiting" while in the GPU queue, then "done"
    _gpu_queue_place: dict | None = None

    def _queued(self, answer: dict) -> None:
        if answer != self._gpu_queue_place:
            self.log.info("%s waits for a GPU: %s", self.gpu_owner, answer.get("reason"))
        self._gpu_queue_place = answer

    async def progress(self):
        """The spawn page's events: the place in the GPU queue and why, while waiting; then
        the spawner's own."""
        shown = None
        while self._gpu_queue_state == "waiting":
            place = self._gpu_queue_place
            if place and place != shown:
                shown = place
                yield {"progress": 5, "message": f"Waiting in the GPU queue: {place['reason']}"}
            await asyncio.sleep(0.5)
        async for event in super().progress():
            yield event

    async def release_gpus(self) -> None:
        if self.gpu_accounting is not None:
            await self.gpu_accounting.release(self.gpu_owner)

    async def poll(self):
        """The spawner's own poll; a server found gone gives its GPUs back."""
        status = await super().poll()
        if status is not None and self.pending != "spawn":
            # The server is gone (crashed, culled, or died while the hub was down).
            await self.release_gpus()
        return status

    async def availability_text(self, profile: Profile) -> tuple[str, bool]:
        """("2 of 4 GPUs free", can start now) for the form."""
        if profile.gpus == 0:
            return "", True
        if self.gpu_accounting is None:
            return "GPUs assigned by the cluster scheduler", True
        groups, _ = self._user_groups_and_roles()
        try:
            a = await self.gpu_accounting.availability(self.user.name, groups, profile.gpu_type)
        except MlopsError as e:
            return f"GPU availability unknown: {e.message}", False
        kind = f"{profile.gpu_type} " if profile.gpu_type else ""
        text = f"{a['free']} of {a['total']} {kind}GPUs free"
        ok = a["free"] >= profile.gpus
        if not ok and a["total"] >= profile.gpus and self.gpu_queue:
            text += " (you wait in the GPU queue until one frees)"
            ok = True
        for q in a["limits"]:
            text += f"; {q['kind']} {q['name']}: {q['in_use']} of {q['limit']} GPU quota in use"
            ok = ok and q["in_use"] + profile.gpus <= q["limit"]
        return text, ok

    # --- the spawn form -----------------------------------------------------------------------

    async def mlops_options_form(self, spawner=None) -> str:
        rows = []
        allowed = self.allowed_profiles()
        default = next((p for p in allowed if p.default), allowed[0] if allowed else None)
        for p in allowed:
            avail, ok = await self.availability_text(p)
            checked = " checked" if p is default else ""
            disabled = "" if ok else " disabled"
            e = html.escape
            rows.append(
                f'<label class="mlops-profile" data-profile="{e(p.slug)}">'
                f'<input type="radio" name="profile" value="{e(p.slug)}"{checked}{disabled}> '
                f'<strong>{e(p.display_name)}</strong> '
                f'<span class="mlops-resources">{e(p.resources_text())}</span><br>'
                f'<span class="mlops-description">{e(p.description)}</span> '
                f'<span class="mlops-availability">{e(avail)}</span></label><br>')
        if not rows:
            return ('<p class="mlops-no-profile">No server profile is available to you; '
                    'ask an administrator to add you to a group.</p>')
        return "\n".join(rows)

    def mlops_options_from_form(self, formdata: dict) -> dict:
        slug = (formdata.get("profile") or [""])[0]
        return {"profile": slug} if slug else {}
