"""``%mlops datasets``: the shared dataset catalog from a notebook cell (over the user API,
:mod:`jupyter_mlops.datasets`)."""
from __future__ import annotations

from .. import datasets
from ..client import ControlPlane
from ..core import errors
from . import UsageError, parser, subcommand, table


def _magic(args: list[str], shell):
    """``%mlops datasets [list | versions NAME | get NAME [-v V] | status FOLDER NAME [-v V]
    | diff NAME FROM TO]``: the catalog from a notebook (a DataFrame or a dict)."""
    import pandas as pd

    p = parser("datasets", "The shared dataset catalog.")
    p.add_argument("action", nargs="?", default="list",
                   choices=["list", "versions", "get", "status", "diff"])
    p.add_argument("args", nargs="*", help="NAME, FOLDER NAME, or NAME FROM TO")
    p.add_argument("-v", "--version", default="latest", help="version or tag (latest)")
    a = p.parse_args(args)
    need = {"list": 0, "versions": 1, "get": 1, "status": 2, "diff": 3}[a.action]
    if len(a.args) != need:
        raise UsageError(f"%mlops datasets {a.action} takes {need} argument(s)")
    try:
        if a.action == "list":
            return table([{
                "name": d["name"], "project": d["project"],
                "latest": (d.get("latest") or {}).get("version"),
                "images": ((d.get("latest") or {}).get("summary") or {}).get("images"),
                "tags": ", ".join(f"{t}={v}" for t, v in sorted(d["tags"].items()))}
                for d in datasets.list()],
                "No datasets in your projects yet: publish a folder of images from the "
                "Datasets section, or with jupyter_mlops.datasets.publish(FOLDER, NAME).")
        if a.action == "versions":
            return pd.DataFrame([{
                "version": v["version"], "tags": ", ".join(v["tags"]), "author": v["author"],
                "message": v["message"], "files": v["summary"]["files"],
                "images": v["summary"]["images"], "objects": v["summary"]["objects"]}
                for v in ControlPlane().dataset(a.args[0])["versions"]])
        if a.action == "get":
            return datasets.get(a.args[0], a.version)
        if a.action == "status":
            return datasets.status(a.args[0], a.args[1], a.version)
        return datasets.diff(*a.args)
    except errors.MlopsError as e:
        raise UsageError(f"%mlops datasets: {e.message}") from None


subcommand("datasets", "the shared datasets: list, versions, get, status, diff")(_magic)
