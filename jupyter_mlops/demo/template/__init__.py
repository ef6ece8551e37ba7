"""Project templates a user copies into their workspace (the sidebar button, a route, a magic).

    from jupyter_mlops.demo import template
    template.copy_to("cell-detection")            # relative to the workspace (the cwd)

The files live next to this module (``cells/``) so they ship inside the package and a fresh
platform needs nothing else. No web framework here: the server extension's route and the
``%mlops template`` magic are thin layers over :func:`copy_to`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from ...core.errors import Conflict, InvalidInput, NotFound

HERE = Path(__file__).resolve().parent
FOLDER_MARK = "{{folder}}"  # replaced by the copy's folder, relative to the workspace
TEXT_SUFFIXES = (".md", ".yaml", ".yml", ".py", ".ipynb")

TEMPLATES = {
    "cells": {
        "title": "Cell detection",
        "description": "Explore the shared cell images, train a small detector (CPU or GPU), "
                       "tune it with a sweep, evaluate mAP and count error, register, deploy "
                       "and call the endpoint.",
        "default_dest": "cell-detection",
        "open": "README.md",
    },
}


def listing() -> list[dict]:
    """The templates with what the UI shows about them."""
    return [{"name": k, **v} for k, v in TEMPLATES.items()]


def source(name: str = "cells") -> Path:
    if name not in TEMPLATES:
        raise NotFound(f"no template {name!r}; there is {', '.join(sorted(TEMPLATES))}")
    return HERE / name


def _target(dest: str, workspace: Path) -> Path:
    if not isinstance(dest, str) or not dest.strip():
        raise InvalidInput("dest is required: the folder of your workspace to copy into")
    p = PurePosixPath(dest.strip().replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        raise InvalidInput(f"dest {dest!r} must be a folder inside your workspace, "
                           "relative and without '..'")
    target = (workspace / p).resolve()  # resolve: a symlink inside must not lead out either
    if target == workspace or workspace not in target.parents:
        raise InvalidInput(f"dest {dest!r} leads out of your workspace; refused")
    return target


def copy_to(dest: str, workspace: str | Path | None = None, name: str = "cells") -> dict:
    """Copy the template ``name`` into ``workspace/dest`` (which must not hold files yet).

    Returns ``{"template", "path", "files", "open"}`` with paths relative to the workspace.
    Raises :class:`InvalidInput` for a destination outside the workspace and :class:`Conflict`
    when it exists and is not an empty folder (nothing of the user's is ever overwritten).
    """
    src = source(name)
    root = Path(workspace if workspace is not None else os.getcwd()).resolve()
    target = _target(dest, root)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Conflict(f"{target.relative_to(root)} exists and is not empty; choose another "
                       "folder")
    files = []
    target.mkdir(parents=True, exist_ok=True)
    rel_target = target.relative_to(root).as_posix()
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src)
        if "__pycache__" in rel.parts or f.suffix == ".pyc" or f.is_dir():
            continue
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix in TEXT_SUFFIXES:
            # job and pipeline paths are relative to the workspace: name the copy's folder
            out.write_text(f.read_text().replace(FOLDER_MARK, rel_target))
        else:
            shutil.copyfile(f, out)  # not copy2: the package's read-only modes stay behind
        files.append(str(rel))
    return {"template": name, "path": rel_target, "files": files,
            "open": f"{rel_target}/{TEMPLATES[name]['open']}"}


def _magic(args: list[str], shell):
    """``%mlops template [cells] [DEST]``: copy a project template next to the notebook."""
    from ...magics import UsageError, parser
    from ...core.errors import MlopsError

    p = parser("template", "Copy a project template into a new folder (relative to the "
                           "kernel's directory).")
    p.add_argument("name", nargs="?", default="cells", choices=sorted(TEMPLATES))
    p.add_argument("dest", nargs="?", default=None,
                   help="folder to create (default: the template's, e.g. cell-detection)")
    a = p.parse_args(args)
    dest = a.dest or TEMPLATES[a.name]["default_dest"]
    try:
        copied = copy_to(dest, os.getcwd(), a.name)
    except MlopsError as e:
        raise UsageError(f"%mlops template: {e.message}") from None
    print(f"copied the {TEMPLATES[a.name]['title'].lower()} template into {copied['path']}/ "
          f"({len(copied['files'])} files); start with {copied['open']}")
    return None


try:  # the %mlops registry (IPython present: always inside a lab)
    from ...magics import subcommand as _subcommand
except ImportError:  # pragma: no cover
    pass
else:
    _subcommand("template", "copy a project template (cells: cell detection) into a folder")(
        _magic)
