"""Selectors, merge patches and quantities for tests/kube_fake.py (the API server's semantics)."""
from __future__ import annotations

import copy
import re
from typing import Callable

# --- selectors -------------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\)|(==|!=|=)\s*([\w./-]*))?\s*$")


def _split_selector(sel: str) -> list[str]:
    """Split on commas outside parentheses (``a in (x,y),b=c``)."""
    parts, depth, cur = [], 0, ""
    for ch in sel:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def label_matcher(selector: str | None) -> Callable[[dict], bool]:
    reqs = []
    for part in _split_selector(selector or ""):
        m = _SET_RE.match(part)
        if not m:
            raise ValueError(f"unable to parse requirement: {part!r}")
        neg, key, setop, values, op, value = m.groups()
        reqs.append((neg, key, setop, [v.strip() for v in (values or "").split(",")], op, value))

    def match(obj: dict) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        for neg, key, setop, values, op, value in reqs:
            if setop == "in" and labels.get(key) not in values:
                return False
            if setop == "notin" and labels.get(key) in values:
                return False
            if op in ("=", "==") and labels.get(key) != value:
                return False
            if op == "!=" and labels.get(key) == value:
                return False
            if not setop and not op and (key in labels) == bool(neg):
                return False
        return True

    return match


def field_matcher(selector: str | None) -> Callable[[dict], bool]:
    reqs = []
    for part in _split_selector(selector or ""):
        m = re.match(r"^\s*([\w.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if not m:
            raise ValueError(f"unable to parse field selector: {part!r}")
        reqs.append(m.groups())

    def lookup(obj, path):
        for p in path.split("."):
            obj = obj.get(p) if isinstance(obj, dict) else None
        return "" if obj is None else str(obj)

    return lambda obj: all((lookup(obj, path) == value) == (op != "!=")
                           for path, op, value in reqs)


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def quantity(v) -> float:
    """Enough of Kubernetes' quantity syntax for GPU counts and pod counts."""
    s = str(v)
    return float(s[:-1]) / 1000 if s.endswith("m") else float(s)
