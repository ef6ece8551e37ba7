"""Reading and touching files in a job's directory, which the job itself may write.

When jobs run as their users' accounts, the job can put anything under the names the control
plane reads (``exit.json``, ``progress.json``, ``run.json``, ``report.jsonl``) or creates
(``prune``, ``timeout``): a symlink to a file only root may read, or a FIFO that blocks the
reader forever. The control plane (root) therefore opens these names without following symlinks,
without blocking, and only reads regular files.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_READ = 4 * 1024 * 1024  # more than any progress, outcome or report file a job writes


def open_untrusted(path: Path, offset: int = 0):
    """A binary file object of the regular file ``path``; ``OSError`` for anything else
    (absent, a symlink, a FIFO, a directory)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(f"{path} is not a regular file")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    if offset:
        f.seek(offset)
    return f


def read_untrusted(path: Path, limit: int = MAX_READ) -> str | None:
    """The text of a job-written file, ``None`` if it is absent or not a regular file."""
    try:
        with open_untrusted(path) as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def touch_untrusted(path: Path) -> None:
    """Create the marker file ``path`` unless something is there already (never through a
    symlink the job left)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC, 0o644)
    except OSError:
        return  # present already (any kind of file): the marker's presence is all that counts
    os.close(fd)
