"""A job's environment: the lock of what its interpreter had installed, and for "rerun exactly"
a virtual environment rebuilt from that lock.

The lock is text: a ``# python X.Y.Z`` line, then one ``name==version`` line per distribution
the interpreter imports (the first one on ``sys.path`` of each name, as ``import`` sees it),
sorted. A distribution installed from a folder or URL rather than an index (an editable
install) carries `` # from <url>``: it is never fetched from an index under its name, where
another project could publish that name. The SHA-256 of the text names the environment.

Rebuilding runs in the job's own process, as the job's account, before any of the job's code
(so a lock naming anything runs nothing as the control plane). ``<envs_dir>/<hash[:16]>`` is a
venv (``python -m venv --without-pip`` from the base interpreter) holding exactly the lock:

* a distribution the running environment has in the same version is linked (symlinks to the
  files its ``RECORD`` lists): nothing is downloaded or copied, the whole platform in seconds;
* the rest is installed without dependencies (the lock pins them all) with ``uv`` (the ``uv``
  package, else one on ``PATH``), else pip: from the local wheels folder first, then the index
  unless offline (uv then also uses its cache, in the account's home).

The built environment's own lock must then equal the lock, or the job is refused with the
difference. It is built in a temporary folder and renamed once complete, so a half-built
environment is never used; a complete one is reused by every later rerun of the same lock.
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

# Runs in-process (the lock of the job's interpreter) and in a built environment (to check it).
LOCK_CODE = r'''
def _lock():
    import json, os, platform, sys
    from importlib import metadata
    here = os.path.abspath(os.getcwd())
    path = [p for p in sys.path if p and os.path.abspath(p) != here]
    seen = {}
    for d in metadata.distributions(path=path):
        name = d.metadata["Name"]
        key = (name or "").lower().replace("_", "-").replace(".", "-")
        if not name or key in seen:
            continue
        line = f"{name}=={d.version}"
        try:
            url = json.loads(d.read_text("direct_url.json") or "null")
        except ValueError:
            url = None
        if isinstance(url, dict) and url.get("url"):
            line += f" # from {url['url']}"
        seen[key] = line
    lines = sorted(seen.values(), key=str.lower)
    return f"# python {platform.python_version()}\n" + "\n".join(lines) + "\n"
'''


class LockNotRebuilt(Exception):
    """The lock cannot be rebuilt exactly (the message says why)."""


def current_lock() -> str:
    """The lock of this interpreter."""
    ns: dict = {}
    exec(LOCK_CODE, ns)
    return ns["_lock"]()


def lock_hash(lock: str) -> str:
    return hashlib.sha256(lock.encode()).hexdigest()


def parse_lock(lock: str) -> tuple[str, dict[str, tuple[str, str, str]]]:
    """``(python version, {normalised name: (name, version, source url or "")})``."""
    python, out = "", {}
    for line in lock.splitlines():
        line = line.strip()
        if line.startswith("# python "):
            python = line.removeprefix("# python ").strip()
            continue
        if not line or line.startswith("#"):
            continue
        req, _, url = line.partition(" # from ")
        name, sep, version = req.partition("==")
        if not sep:
            raise LockNotRebuilt(f"lock line {line!r} is not name==version")
        out[_norm(name)] = (name.strip(), version.strip(), url.strip())
    return python, out


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def difference(want: str, got: str) -> str:
    """What differs between two locks, in words (empty: none)."""
    (pw, w), (pg, g) = parse_lock(want), parse_lock(got)
    out = [f"python {pw} locked, {pg} here"] if pw != pg else []
    for k in sorted(set(w) | set(g)):
        a, b = w.get(k), g.get(k)
        if a is None:
            out.append(f"{b[0]} {b[1]} is not in the lock")
        elif b is None:
            out.append(f"{a[0]}=={a[1]} is missing")
        elif a[1] != b[1]:
            out.append(f"{a[0]}=={a[1]} locked, {b[1]} here")
    return "; ".join(out)


def _local_distributions() -> dict[str, object]:
    """This interpreter's distributions by normalised name (the first on ``sys.path``)."""
    from importlib import metadata

    here = os.path.abspath(os.getcwd())
    path = [p for p in sys.path if p and os.path.abspath(p) != here]
    out = {}
    for d in metadata.distributions(path=path):
        name = d.metadata["Name"]
        if name and _norm(name) not in out:
            out[_norm(name)] = d
    return out


def _link(dists: list, owners: dict, site: Path) -> None:
    """Symlink each distribution's files into ``site``: a top-level folder owned by this one
    distribution as a whole, a shared one (a namespace package) file by file."""
    for d in dists:
        src_site = Path(d.locate_file(""))
        for top, files in (_tops(d) or {}).items():
            target = site / top
            if owners.get((src_site, top)) == {_norm(d.metadata["Name"])}:
                if not os.path.lexists(target):
                    target.symlink_to(src_site / top)
                continue
            for f in files:
                t = site / f
                if os.path.lexists(t):
                    continue
                t.parent.mkdir(parents=True, exist_ok=True)
                t.symlink_to(src_site / f)


_TOPS: dict = {}


def _tops(d) -> dict[str, list[str]] | None:
    """``{top-level name: [files under it]}`` from the distribution's RECORD (read as text:
    ``Distribution.files`` builds a path object per file, seconds for the whole platform);
    ``None`` without a RECORD."""
    key = str(d.locate_file("")) + "/" + str(d.metadata["Name"])
    if key not in _TOPS:
        text = d.read_text("RECORD")
        out: dict[str, list[str]] | None = None
        if text is not None:
            out = {}
            for row in csv.reader(text.splitlines()):
                parts = PurePosixPath(row[0]).parts if row else ()
                if not parts or parts[0] == "..":
                    continue  # scripts in bin/: not imported, not part of the lock
                out.setdefault(parts[0], []).append(row[0])
        _TOPS[key] = out
    return _TOPS[key]


def _owners(dists: dict) -> dict:
    owners: dict = {}
    for key, d in dists.items():
        src_site = Path(d.locate_file(""))
        for top in _tops(d) or ():
            owners.setdefault((src_site, top), set()).add(key)
    return owners


def build(lock: str, envs_dir: Path, *, wheels: str = "", offline: bool = False,
          log=print) -> Path:
    """The interpreter of an environment holding exactly ``lock`` (built unless cached).

    Raises :class:`LockNotRebuilt` with the reason when it cannot be built exactly.
    """
    h = lock_hash(lock)
    env = Path(envs_dir) / h[:16]
    python = env / "bin" / "python"
    if (env / ".complete").is_file() and (env / ".complete").read_text().strip() == h:
        log(f"[mlops] environment {h[:16]} reused from {env}")
        return python
    want_python, wanted = parse_lock(lock)
    here = sys.version.split()[0]
    if want_python and want_python != here:
        raise LockNotRebuilt(f"the lock is of python {want_python}; this platform runs "
                                f"jobs with python {here}")
    try:
        Path(envs_dir).mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{h[:16]}-", dir=envs_dir))
    except OSError as e:  # a backend that did not give the job's account its folder
        raise LockNotRebuilt(f"cannot build environments in {envs_dir}: {e.strerror}") from None
    try:
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--without-pip", str(tmp)], check=True,
                       capture_output=True)
        site = Path(subprocess.run(
            [str(tmp / "bin" / "python"), "-c", "import sysconfig; print(sysconfig."
             "get_paths()['purelib'])"], check=True, capture_output=True, text=True,
            cwd=tmp).stdout.strip())
        local = _local_distributions()
        linked, missing = [], []
        for key, (name, version, url) in wanted.items():
            d = local.get(key)
            if d is not None and d.version == version and _tops(d) is not None:
                linked.append(d)
            else:
                missing.append((name, version, url))
        _link(linked, _owners(local), site)
        log(f"[mlops] environment {h[:16]}: {len(linked)} distributions linked from this "
            f"environment, {len(missing)} to install")
        if missing:
            _install(tmp, missing, wheels=wheels, offline=offline, log=log)
        # Same code, run by the built interpreter: it must see exactly the lock.
        got = subprocess.run([str(tmp / "bin" / "python"), "-c",
                              LOCK_CODE + "\nprint(_lock(), end='')"], capture_output=True,
                             text=True, cwd=tmp, env={**os.environ, "PYTHONNOUSERSITE": "1"})
        if got.returncode != 0:
            raise LockNotRebuilt(f"the rebuilt environment does not start: "
                                    f"{got.stderr.strip()[-300:]}")
        diff = difference(lock, got.stdout)
        if diff:
            raise LockNotRebuilt(f"the rebuilt environment differs from the lock: {diff}")
        (tmp / ".complete").write_text(h)
        try:
            os.replace(tmp, env)
        except OSError:  # another job built the same lock meanwhile: use that one
            if not (env / ".complete").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        return python
    except subprocess.CalledProcessError as e:
        raise LockNotRebuilt(f"could not create the environment: "
                                f"{(e.stderr or b'').decode(errors='replace')[-300:]}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _uv() -> str | None:
    """uv's binary: the one of the ``uv`` package (a dependency of the platform), else any on
    ``PATH``; ``None``: pip installs instead."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def _install(env: Path, missing: list, *, wheels: str, offline: bool, log) -> None:
    pinned = [f"{n}=={v}" for n, v, url in missing if not url]
    unpinnable = [f"{n}=={v} (from {url})" for n, v, url in missing if url]
    if unpinnable:
        raise LockNotRebuilt(
            "installed from a folder or URL, not found here in that version: "
            + ", ".join(unpinnable))
    python = str(env / "bin" / "python")
    uv = _uv()
    if uv:
        cmd = [uv, "pip", "install", "--python", python, "--no-deps"]
        cmd += ["--offline"] if offline else []
    else:
        cmd = [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
               "--no-input", "--disable-pip-version-check"]
        cmd += ["--no-index"] if offline else []
    if wheels:
        cmd += ["--find-links", wheels]
    if offline and not wheels and not uv:
        raise LockNotRebuilt("offline, with no wheels folder, cannot install "
                                + ", ".join(pinned))
    log(f"[mlops] installing {', '.join(pinned)} with {Path(cmd[0]).name}")
    out = subprocess.run(cmd + pinned, capture_output=True, text=True)
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise LockNotRebuilt(f"could not install {', '.join(pinned)}: " + " ".join(tail))
