"""The code snapshot of a job: the folder its notebook or script lives in, as it was.

A script importing a sibling module (``from model import Net``) reruns exactly only if the
sibling comes back too, so the whole folder is copied, bounded and without what is not code:
hidden files and folders (``.git``, ``.venv``, ``.env``...), ``__pycache__``, ``mlops-jobs``,
what the ``.gitignore`` files of the folder and of the folders above it (up to the workspace)
ignore, and files the user could not read. Symbolic links are not followed (neither files nor
folders): the control plane may be root, and a link could point anywhere.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path, PurePosixPath

import pathspec

from ..errors import InvalidInput

SKIPPED_DIRS = {"__pycache__", "mlops-jobs", "node_modules"}
RESERVED = {"source.json", "diff.patch"}  # the snapshot's own records, at its top


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class FolderSnapshot:
    """Copy a workspace folder into a snapshot folder.

    Parameters
    ----------
    max_bytes, max_files
        Bounds of one snapshot; a folder holding more is refused with what is biggest in it.
    """

    def __init__(self, max_bytes: int = 50_000_000, max_files: int = 2000):
        self.max_bytes = max_bytes
        self.max_files = max_files

    def _ignores(self, ws: Path, folder: Path) -> list:
        """``(folder relative to ws, spec)`` of every .gitignore from ``ws`` down to
        ``folder`` (those below are read while walking)."""
        out = []
        rel = folder.relative_to(ws)
        for i in range(len(rel.parts) + 1):
            base = PurePosixPath(*rel.parts[:i])
            spec = _read_spec(ws / base / ".gitignore", ws)
            if spec is not None:
                out.append((base, spec))
        return out

    def copy(self, ws: Path, folder: Path, dest: Path, readable_by: int) -> dict:
        """Copy ``folder`` (inside the workspace ``ws``) to ``dest``.

        ``readable_by``: the uid of the workspace's owner; a file they cannot read (not theirs
        and not world-readable) is left out. Returns ``{"files", "bytes", "skipped"}``.
        """
        specs = self._ignores(ws, folder)
        total, files, skipped, sizes = 0, 0, [], []
        dest.mkdir(parents=True, exist_ok=True)
        for root, dirs, names, rootfd in os.fwalk(folder, follow_symlinks=False):
            rel_root = PurePosixPath(Path(root).relative_to(folder).as_posix())
            ws_root = PurePosixPath(Path(root).relative_to(ws).as_posix())
            if rel_root != PurePosixPath("."):
                spec = _read_spec_at(rootfd, ws_root, ws)
                if spec is not None:
                    specs.append((ws_root, spec))
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS
                             and not _ignored(specs, ws_root / d, True))
            for name in sorted(names):
                rel = rel_root / name
                if name.startswith(".") or _ignored(specs, ws_root / name, False):
                    continue
                if rel_root == PurePosixPath(".") and name in RESERVED:
                    skipped.append(str(rel))
                    continue
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                                 | os.O_CLOEXEC, dir_fd=rootfd)
                except OSError:
                    continue  # a link, gone meanwhile, or unreadable
                with os.fdopen(fd, "rb") as src:
                    st = os.fstat(fd)
                    # judged by what was opened: a folder swapped for a link meanwhile leads
                    # outside the workspace, where root could read what the user cannot
                    real = Path(os.readlink(f"/proc/self/fd/{fd}"))
                    if not stat.S_ISREG(st.st_mode) or not real.is_relative_to(ws) or (
                            st.st_uid != readable_by and not st.st_mode & stat.S_IROTH):
                        continue
                    total += st.st_size
                    files += 1
                    sizes.append((st.st_size, str(rel)))
                    if total > self.max_bytes or files > self.max_files:
                        self._refuse(folder, ws, sizes, total, files)
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        return {"files": files, "bytes": total, "skipped": skipped}

    def _refuse(self, folder: Path, ws: Path, sizes: list, total: int, files: int):
        where = folder.relative_to(ws).as_posix()
        where = "your workspace's top folder" if where == "." else f"folder {where!r}"
        big = ", ".join(f"{p} ({_mb(n)})" for n, p in sorted(sizes, reverse=True)[:3])
        raise InvalidInput(
            f"a job snapshots the {where} it runs from, and it holds more than "
            f"{self.max_files} files or {_mb(self.max_bytes)} (so far {files} files, "
            f"{_mb(total)}; biggest: {big}): list data and outputs in a .gitignore, or keep "
            "the code in a folder of its own")


def _read_spec(path: Path, ws: Path):
    try:
        if path.is_symlink() or not path.is_file() or not path.resolve().is_relative_to(ws):
            return None
        return pathspec.GitIgnoreSpec.from_lines(path.read_text(errors="replace").splitlines())
    except OSError:
        return None


def _read_spec_at(dirfd: int, ws_rel: PurePosixPath, ws: Path):
    try:
        fd = os.open(".gitignore", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dirfd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = f.read(1 << 20).decode("utf-8", "replace")
    return pathspec.GitIgnoreSpec.from_lines(text.splitlines())


def _ignored(specs: list, path: PurePosixPath, is_dir: bool) -> bool:
    for base, spec in specs:
        try:
            rel = path.relative_to(base)
        except ValueError:
            continue
        if spec.match_file(str(rel) + ("/" if is_dir else "")):
            return True
    return False
