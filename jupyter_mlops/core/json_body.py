"""JSON in and out of the web layers: what a request body may be, and what an answer may hold.

Both web layers (``service.handlers.base`` and ``server.handlers``) decode every JSON request
body with :func:`decode` and encode every JSON answer with :func:`encode`, so a malformed body is
refused the same way everywhere, with a reason, before any domain code sees it:

* not UTF-8, not JSON, or not an object: 400;
* nested deeper than :data:`MAX_DEPTH` (a deeper document would exhaust the recursion limit of
  the parser or of the code walking it): 400;
* larger than the caller's limit: 413;
* ``NaN``/``Infinity`` (not JSON numbers: a browser's ``JSON.parse`` rejects an answer holding
  them), numbers that overflow a double, and integers outside a signed 64-bit range (the widest
  the databases store): 400;
* strings holding NUL or unpaired surrogates (no file name, database or UTF-8 encoder takes
  them): 400.
"""
from __future__ import annotations

import json
import math
import re

from .errors import InvalidInput, NotFound, PayloadTooLarge

MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
MAX_BYTES = 32 * 1024 * 1024  # a manifest of ~100,000 files; bulk bytes travel as octet-stream
_BAD_CHARS = re.compile("[\x00\ud800-\udfff]")


def _parse_int(text: str) -> int:
    if len(text) > 20:
        raise InvalidInput(f"the number {text[:24]}... is out of range (a signed 64-bit integer)")
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise InvalidInput(f"the number {text} is out of range (a signed 64-bit integer)")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidInput(f"the number {text[:24]} is out of range")
    return value


def _parse_constant(name: str):
    raise InvalidInput(f"{name} is not a JSON number; send null or a finite number")


def check_text(value: str, where: str) -> str:
    """``value`` unless it holds NUL or an unpaired surrogate (then 400 naming ``where``)."""
    if _BAD_CHARS.search(value):
        raise InvalidInput(f"{where} holds a NUL character or an unpaired surrogate")
    return value


def decode_argument(raw: bytes, name: str | None, *, in_path: bool) -> str:
    """A URL argument as text: a path segment that is not clean UTF-8 text names nothing
    (404); such a query or form value is bad input (400, naming it)."""
    try:
        return check_text(raw.decode("utf-8"), f"{name or 'the URL'!r}")
    except (UnicodeDecodeError, InvalidInput):
        if in_path:
            raise NotFound("nothing is named that here (the path is not clean UTF-8 text)") \
                from None
        raise InvalidInput(f"{name!r} is not UTF-8 text without NUL characters") from None


def _check_tree(value, depth_limit: int) -> None:
    """Depth and strings of a decoded document, without recursion."""
    stack = [(value, 1, "body")]
    while stack:
        node, depth, where = stack.pop()
        if isinstance(node, str):
            check_text(node, where)
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > depth_limit:
            raise InvalidInput(f"the JSON document is nested deeper than {depth_limit} levels")
        if isinstance(node, dict):
            for key, item in node.items():
                check_text(key, "a field name")
                stack.append((item, depth + 1, repr(key)[:40]))
        else:
            stack.extend((item, depth + 1, where) for item in node)


def decode(raw: bytes | None, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
           empty=None) -> dict:
    """The JSON object in a request body (``empty`` when there is no body, ``{}`` if None).

    Raises
    ------
    InvalidInput
        the body is not UTF-8 JSON text holding an object within the limits above.
    PayloadTooLarge
        the body is longer than ``max_bytes``.
    """
    if not raw:
        return {} if empty is None else empty
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the JSON body is larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the request body is not UTF-8 text (byte {e.start})") from None
    try:
        body = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=_parse_constant)
    except RecursionError:
        raise InvalidInput(f"the JSON document is nested deeper than {max_depth} levels") from None
    except ValueError as e:  # JSONDecodeError, or int() refusing thousands of digits
        raise InvalidInput(f"the request body is not JSON: {e}") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    _check_tree(body, max_depth)
    return body


def _finite(value):
    """A copy of ``value`` with every NaN/Infinity replaced by None (iterative, any depth)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if not isinstance(value, (dict, list, tuple)):
        return value
    root = {} if isinstance(value, dict) else []
    stack = [(value, root)]
    while stack:
        src, dst = stack.pop()
        items = src.items() if isinstance(src, dict) else enumerate(src)
        for key, item in items:
            if isinstance(item, float) and not math.isfinite(item):
                item = None
            elif isinstance(item, (dict, list, tuple)):
                copy = {} if isinstance(item, dict) else []
                stack.append((item, copy))
                item = copy
            if isinstance(dst, dict):
                dst[key] = item
            else:
                dst.append(item)
    return root


def encode(data) -> str:
    """``data`` as strict JSON: a float that is NaN or infinite is written as null, so the
    answer is always something ``JSON.parse`` accepts (a record stored before input was checked,
    or a value computed from one, must not break the page that lists it)."""
    try:
        return json.dumps(data, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(data), allow_nan=False)
