"""MLflow's scoring protocol: request bodies -> model inputs, predictions -> JSON.

Accepted bodies of ``POST /invocations`` (the formats ``mlflow models serve`` accepts):

* ``application/json`` with exactly one of ``dataframe_split`` (``{"columns": [...],
  "data": [[...], ...]}``), ``dataframe_records`` (``[{column: value}, ...]``), ``instances`` or
  ``inputs`` (a tensor: nested lists, or a dict of named tensors), plus optional ``params``;
* ``text/csv`` with a header row;
* ``image/png``, ``image/jpeg``, ``image/tiff``, ``image/bmp``: one image, given to the model as a
  numpy array of shape ``(1, height, width[, channels])`` (jupyter-mlops' extension for image
  models; MLflow itself has no image body).

Every request becomes a :class:`Payload`. Payloads with the same ``key`` can be stacked into one
model call (micro-batching); ``key`` is ``None`` for inputs that must run alone (named tensors,
``params``, images).
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg", "image/tiff", "image/bmp")


class BadRequest(Exception):
    """The body cannot be read as a model input; the message says why (answered with 400)."""


@dataclass
class Payload:
    key: tuple | None  # requests with equal keys are batched together; None: run alone
    n: int  # rows in this request (how many predictions belong to it)
    rows: list | None = None  # tabular rows (list of lists) in ``columns`` order
    columns: tuple | None = None
    value: Any = None  # the model input when not given as rows (tensor, frame, image)
    params: dict | None = None


def parse(content_type: str, body: bytes) -> Payload:
    ctype = (content_type or "application/json").split(";")[0].strip().lower()
    if ctype in ("application/json", "", "*/*"):
        return _parse_json(body)
    if ctype == "text/csv":
        return _parse_csv(body)
    if ctype in IMAGE_TYPES:
        return _parse_image(body)
    raise BadRequest(
        f"unsupported Content-Type {ctype!r}: send application/json, text/csv or an image "
        f"({', '.join(IMAGE_TYPES)})"
    )


def _parse_json(body: bytes) -> Payload:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"malformed JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadRequest(f"the JSON body must be an object with one of the keys {FORMATS}")
    keys = [k for k in FORMATS if k in doc]
    if len(keys) != 1:
        raise BadRequest(
            f"the JSON body must have exactly one of the keys {', '.join(FORMATS)}; "
            f"got {', '.join(sorted(doc)) or 'none'}"
        )
    extra = set(doc) - {keys[0], "params"}
    if extra:
        raise BadRequest(f"unexpected keys in the JSON body: {', '.join(sorted(extra))}")
    params = doc.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadRequest("'params' must be an object")
    fmt, value = keys[0], doc[keys[0]]
    if fmt == "dataframe_split":
        payload = _split(value)
    elif fmt == "dataframe_records":
        payload = _records(value)
    else:
        payload = _tensor(fmt, value)
    if params:
        payload.key, payload.params = None, params
    return payload


def _split(value) -> Payload:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise BadRequest("'dataframe_split' must be an object with a 'data' list of rows")
    data, columns = value["data"], value.get("columns")
    if columns is not None and not isinstance(columns, list):
        raise BadRequest("'dataframe_split.columns' must be a list of column names")
    width = len(columns) if columns is not None else None
    for i, row in enumerate(data):
        if not isinstance(row, list):
            raise BadRequest(f"'dataframe_split.data' row {i} is not a list")
        if width is None:
            width = len(row)
        if len(row) != width:
            raise BadRequest(
                f"'dataframe_split.data' row {i} has {len(row)} values, expected {width}"
            )
    cols = tuple(columns) if columns is not None else None
    return Payload(key=("frame", cols, width), n=len(data), rows=data, columns=cols)


def _records(value) -> Payload:
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise BadRequest("'dataframe_records' must be a list of objects")
    if not value:
        return Payload(key=None, n=0, rows=[], columns=())
    cols = tuple(value[0])
    if all(len(r) == len(cols) and all(c in r for c in cols) for r in value):
        rows = [[r[c] for c in cols] for r in value]
        return Payload(key=("frame", cols, len(cols)), n=len(rows), rows=rows, columns=cols)
    import pandas as pd  # ragged records: let pandas align them, and run alone

    return Payload(key=None, n=len(value), value=pd.DataFrame.from_records(value))


def _tensor(fmt: str, value) -> Payload:
    if isinstance(value, dict):  # named tensors: passed through as a dict of arrays
        try:
            arrays = {k: np.asarray(v) for k, v in value.items()}
        except ValueError as e:
            raise BadRequest(f"'{fmt}' holds ragged arrays: {e}") from None
        return Payload(key=None, n=1, value=arrays)
    if not isinstance(value, list):
        raise BadRequest(f"'{fmt}' must be a list (a batch) or an object of named tensors")
    if value and all(isinstance(v, dict) for v in value):
        return _records(value)  # a list of objects is a list of records
    try:
        arr = np.asarray(value)
    except ValueError as e:
        raise BadRequest(f"'{fmt}' is a ragged list: {e}") from None
    if arr.dtype == object:
        raise BadRequest(f"'{fmt}' is ragged or mixes types; every row needs the same shape")
    if arr.ndim == 0:
        arr = arr.reshape(1)
    return Payload(key=("tensor", arr.shape[1:], arr.dtype.kind), n=len(arr), value=arr)


def _parse_csv(body: bytes) -> Payload:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except Exception as e:  # pandas raises many kinds (EmptyDataError, ParserError, ...)
        raise BadRequest(f"malformed CSV: {e}") from None
    cols = tuple(str(c) for c in frame.columns)
    return Payload(key=("csv", cols, len(cols)), n=len(frame), value=frame, columns=cols)


def _parse_image(body: bytes) -> Payload:
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(body))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise BadRequest(f"malformed image: {e}") from None
    except Image.DecompressionBombError as e:
        raise BadRequest(f"image too large: {e}") from None
    if img.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
    return Payload(key=None, n=1, value=np.asarray(img)[None, ...])


# --- batches ---------------------------------------------------------------------------------

def assemble(items: list[Payload]):
    """One model input holding every request of a batch (all with the same key), in order."""
    first = items[0]
    if first.rows is not None:
        rows = first.rows if len(items) == 1 else list(chain.from_iterable(p.rows for p in items))
        return _frame(rows, first.columns)
    if first.key is not None and first.key[0] == "csv":
        import pandas as pd

        return pd.concat([p.value for p in items], ignore_index=True) if len(items) > 1 \
            else first.value
    if first.key is not None and first.key[0] == "tensor":
        return np.concatenate([p.value for p in items]) if len(items) > 1 else first.value
    return first.value


def _frame(rows: list, columns: tuple | None):
    import pandas as pd

    cols = list(columns) if columns is not None else None
    # Numeric rows: one numpy conversion is several times cheaper than pandas' row inference.
    try:
        arr = np.array(rows)
    except ValueError:
        arr = None
    if arr is not None and arr.ndim == 2 and arr.dtype.kind in "iufb":
        return pd.DataFrame(arr, columns=cols)
    return pd.DataFrame(rows, columns=cols)


def split(prediction, counts: list[int]) -> list | None:
    """Cut a batch prediction into one piece per request; None when it is not row-aligned."""
    total = sum(counts)
    try:
        length = len(prediction)
    except TypeError:
        return None
    if length != total or isinstance(prediction, (str, bytes, dict)):
        return None
    pieces, start = [], 0
    iloc = getattr(prediction, "iloc", None)
    for c in counts:
        pieces.append(iloc[start:start + c] if iloc is not None else prediction[start:start + c])
        start += c
    return pieces


def to_jsonable(prediction) -> Any:
    """MLflow's answer shape: arrays and series as lists, frames as a list of records."""
    if isinstance(prediction, np.ndarray):
        return prediction.tolist()
    to_dict = getattr(prediction, "to_dict", None)
    if to_dict is not None and hasattr(prediction, "columns"):
        return prediction.to_dict(orient="records")
    tolist = getattr(prediction, "tolist", None)
    if tolist is not None:
        return tolist()
    return prediction


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    tolist = getattr(o, "tolist", None)
    if tolist is not None:
        return tolist()
    return str(o)


def predictions_body(prediction) -> bytes:
    return json.dumps({"predictions": to_jsonable(prediction)}, default=_default).encode()


def monitored_features(content_type: str, body: bytes, answer: bytes) -> list[dict]:
    """What input monitoring keeps of one call: per row, its numeric named columns; per image,
    its size, mean intensity and the count of objects predicted in it (never the pixels)."""
    from ..core.monitoring.drift import image_features

    payload = parse(content_type, body)
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype in IMAGE_TYPES:
        try:
            preds = json.loads(answer).get("predictions")
        except (ValueError, AttributeError):
            preds = None
        first = preds[0] if isinstance(preds, list) and preds else None
        return [image_features(payload.value[0], first)]
    rows, columns = payload.rows, payload.columns
    if rows is None and columns and hasattr(payload.value, "to_numpy"):  # CSV
        rows = payload.value.to_numpy().tolist()
    if rows is None or not columns:
        return []
    return [{str(c): float(v) for c, v in zip(columns, row)
             if isinstance(v, (int, float)) and not isinstance(v, bool)} for row in rows]
