"""Per-user system accounts: who a user's server, jobs and model servers run as on one machine.

The local spawner, the local job backend and the local model-server backend all use this one
module, so a hub user ``alice`` is the same Unix account ``jm-alice`` (same uid, same home =
workspace) whichever of them starts her code.

Isolation applies when the process starting the work is root (the embedded default runs the
hub and the control plane as root) and it is not switched off. Then:

- the account is created on first use (``useradd --system --user-group``), its home is the
  user's workspace ``<workspace_root>/<name>``, owned by the account, mode 0700;
- the work is started with the account's uid, primary gid and supplementary groups, in a
  session of its own, with umask 077 (files it creates are private to it).

Without root nothing can be switched: everything runs as the platform's own user, and users are
not isolated from one another (say so to whoever runs it that way).

This module lives in ``jupyter_mlops.backends`` rather than in the spawner package because the
spawner already depends on ``jupyter_mlops`` (never the other way round).
"""
from __future__ import annotations

import hashlib
import os
import pwd
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from traitlets import Bool, Unicode
from traitlets.config import LoggingConfigurable

DEFAULT_PREFIX = "jm-"


class AccountError(RuntimeError):
    """An account could not be created or a path cannot be reached by it (the message says
    what to fix)."""


def system_username(prefix: str, hub_name: str) -> str:
    """A valid Linux account name for a hub user: ``jm-alice``; odd names get a hash suffix.

    useradd accepts ``[a-z_][a-z0-9_-]*``, at most 32 characters.
    """
    base = re.sub(r"[^a-z0-9_-]", "-", hub_name.lower())
    name = prefix + base
    if base != hub_name or len(name) > 32:
        digest = hashlib.sha256(hub_name.encode()).hexdigest()[:8]
        name = f"{name[:23]}-{digest}"
    return name


def isolation_applies(enabled: bool = True) -> bool:
    """Whether work is started as per-user accounts: asked for, and we may switch users."""
    return bool(enabled) and os.geteuid() == 0


def unreachable_part(path: Path) -> Path | None:
    """The first ancestor of ``path`` (or itself) that other users cannot traverse (no o+x)."""
    for p in [*reversed(path.resolve().parents), path.resolve()]:
        try:
            if not p.stat().st_mode & stat.S_IXOTH:
                return p
        except FileNotFoundError:
            return None
    return None


def make_traversable(path: Path, fix: bool = True, log=None) -> None:
    """Let per-user accounts reach ``path``: add o+x (the search bit, never o+r) to each
    ancestor lacking it when ``fix``; otherwise raise :class:`AccountError` naming it."""
    while (bad := unreachable_part(path)) is not None:
        if not fix:
            raise AccountError(f"{bad} is not traversable by other users (mode "
                               f"{stat.S_IMODE(bad.stat().st_mode):o}); chmod o+x it or move "
                               "the data directory")
        if log is not None:
            log.warning("Adding o+x to %s so per-user accounts can reach %s", bad, path)
        bad.chmod(stat.S_IMODE(bad.stat().st_mode) | stat.S_IXOTH)


@dataclass(frozen=True)
class SystemAccount:
    """A hub user's Unix account and what dropping to it takes."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: Path

    @classmethod
    def lookup(cls, name: str, home: Path | None = None) -> "SystemAccount":
        entry = pwd.getpwnam(name)  # KeyError when absent
        return cls(name, entry.pw_uid, entry.pw_gid,
                   tuple(os.getgrouplist(name, entry.pw_gid)),
                   Path(home) if home is not None else Path(entry.pw_dir))

    def popen_kwargs(self) -> dict:
        """``subprocess.Popen`` arguments that start the process as this account.

        Preferred over a ``preexec_fn`` in the control plane: it has threads, and Popen
        switches ids in C between fork and exec, where running Python code is unsafe.
        """
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups),
                "umask": 0o077, "start_new_session": True}

    def login_env(self) -> dict:
        """The environment variables a login as this account sets: programs find their
        user's name and home there (``~``, caches, config), not the control plane's."""
        return {"USER": self.name, "LOGNAME": self.name, "HOME": str(self.home)}

    def preexec(self, before=None, cwd: str | None = None):
        """A ``preexec_fn`` dropping to this account for good (JupyterHub's spawner API).

        ``before`` runs first, still as root (e.g. joining a cgroup).
        """
        uid, gid, groups = self.uid, self.gid, list(self.groups)

        def drop():
            if before is not None:
                before()
            if os.getsid(0) != os.getpid():  # Popen may have made a session already
                os.setsid()
            os.setgroups(groups)  # supplementary groups first: needs root
            os.setgid(gid)
            os.setuid(uid)  # last: after it nothing can be switched back
            os.umask(0o077)
            if cwd:
                os.chdir(cwd)
        return drop

    def owns(self, path: Path, mode: int = 0o700) -> None:
        """Make ``path`` (a directory, created if missing) this account's, with ``mode``."""
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, self.uid, self.gid, follow_symlinks=False)
        path.chmod(mode)


def ensure_account(name: str, home: Path, hub_name: str = "", log=None) -> SystemAccount:
    """The account ``name`` with home ``home`` (created if missing; home made its own, 0700)."""
    home = Path(home)
    try:
        account = SystemAccount.lookup(name, home)
    except KeyError:
        if log is not None:
            log.info("Creating system account %s for %s", name, hub_name or name)
        r = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(home),
             "--shell", "/bin/bash", "--comment", f"jupyter-mlops user {hub_name or name}",
             name], capture_output=True, text=True)
        # 9: the account appeared meanwhile (a server and a job of the same user at once)
        if r.returncode not in (0, 9):
            raise AccountError(f"cannot create system account {name}: {r.stderr.strip()}")
        account = SystemAccount.lookup(name, home)
    account.owns(home, 0o700)
    return account


class UserAccounts:
    """Hub users -> their accounts, for the control plane's local backends.

    Parameters
    ----------
    workspace_root
        ``<workspace_root>/<user>`` is each user's home (the spawner's ``workspace_root``).
    prefix
        Account name prefix (the spawner's ``system_user_prefix``).
    enabled
        ``False`` runs everything as the platform's user even as root.
    """

    def __init__(self, workspace_root: Path, prefix: str = DEFAULT_PREFIX,
                 enabled: bool = True, log=None):
        self.workspace_root = Path(workspace_root)
        self.prefix = prefix
        self.enabled = enabled
        self.log = log

    @property
    def isolated(self) -> bool:
        return isolation_applies(self.enabled)

    def name_of(self, user: str) -> str:
        return system_username(self.prefix, user)

    def account(self, user: str) -> SystemAccount | None:
        """``user``'s account, created with its workspace if missing; ``None`` when not
        isolated (work then runs as the platform's user)."""
        if not self.isolated:
            return None
        self.workspace_root.mkdir(parents=True, exist_ok=True)
        make_traversable(self.workspace_root, True, self.log)
        self.workspace_root.chmod(0o711)  # as the spawner: enter one's own home, list no one's
        return ensure_account(self.name_of(user), self.workspace_root / user, user, self.log)


class AccountSettings(LoggingConfigurable):
    """Who the control plane's local jobs and model servers run as (``c.AccountSettings``)."""

    isolate_users = Bool(
        True,
        help="""When the control plane runs as root, run each user's jobs and model servers as
        that user's system account (the one the local spawner runs their server as, created on
        first use). Without root this has no effect: they run as the control plane's user.
        Follows ``c.MlopsLocalSpawner.isolate_users`` from the ``--config`` file.""",
    ).tag(config=True)

    system_user_prefix = Unicode(
        DEFAULT_PREFIX,
        help="""Prefix of the per-user accounts (``jm-alice``): the same as
        ``c.MlopsLocalSpawner.system_user_prefix``, so a job runs as the same account as its
        user's server. The embedded default passes the spawner's setting from the
        ``--config`` file here; set it by hand only when running the control plane yourself.""",
    ).tag(config=True)

    def user_accounts(self, workspace_root: Path) -> UserAccounts:
        return UserAccounts(workspace_root, self.system_user_prefix, self.isolate_users,
                            self.log)
