"""Reading what an MLflow request names: its JSON body, checked, and the ids in it.

MLflow reads request fields under their protobuf name and their JSON name (``run_id`` and
``runId``), from the query string of a GET and otherwise from a JSON body (a GET without query
arguments too), and it decodes a body that is a JSON *string* a second time. The gateway
therefore reads both, accepts every spelling, and forwards its own serialisation of the body it
checked, so MLflow never parses something the gateway did not see.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..core.errors import InvalidInput

MAX_DEPTH = 32  # MLflow's own messages nest 4 levels; GraphQL variables a few more

_EXPERIMENT = {"experiment_id", "experimentId"}
_EXPERIMENTS = {"experiment_ids", "experimentIds"}
_RUN = {"run_id", "run_uuid", "runId", "runUuid", "source_run_id", "sourceRunId"}
_RUNS = {"run_ids", "runIds", "runUuids", "run_uuids"}
_LOGGED_MODEL = {"model_id", "modelId"}


def decode_json(body: bytes):
    """The request body as JSON (None when empty); :class:`InvalidInput` when it is not
    UTF-8, not JSON, or nested deeper than :data:`MAX_DEPTH`."""
    if not body or not body.strip():
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidInput(f"the request body is not UTF-8 (byte {e.start})") from None
    try:
        data = json.loads(text)
        if isinstance(data, str):  # MLflow decodes a double-encoded body once more
            data = json.loads(data)
    except RecursionError:
        raise InvalidInput(f"the JSON body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:
        raise InvalidInput(f"the request body is not valid JSON: {e}") from None
    check_depth(data)
    return data


def check_depth(data) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(f"the JSON body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def _one(key: str, value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidInput(f"'{key}' must be a string")
    return str(value)


def _many(key: str, value) -> list[str]:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [str(value)]
    if not isinstance(value, list):
        raise InvalidInput(f"'{key}' must be a list of strings")
    return [_one(key, v) for v in value]


@dataclass
class Ids:
    """Experiment, run and logged-model ids a request names, wherever they are."""

    experiments: set = field(default_factory=set)
    runs: set = field(default_factory=set)
    logged_models: set = field(default_factory=set)

    def add(self, key: str, value) -> None:
        if value is None:
            return
        if key in _EXPERIMENT:
            self.experiments.add(_one(key, value))
        elif key in _EXPERIMENTS:
            self.experiments.update(_many(key, value))
        elif key in _RUN:
            self.runs.add(_one(key, value))
        elif key in _RUNS:
            self.runs.update(_many(key, value))
        elif key in _LOGGED_MODEL:
            self.logged_models.add(_one(key, value))

    def collect(self, data) -> None:
        """Every id at any depth of a decoded JSON value (a wrong type is InvalidInput)."""
        stack = [data]
        while stack:
            value = stack.pop()
            if isinstance(value, dict):
                for k, v in value.items():
                    if k in _EXPERIMENT | _EXPERIMENTS | _RUN | _RUNS | _LOGGED_MODEL:
                        self.add(k, v)
                    else:
                        stack.append(v)
            elif isinstance(value, list):
                stack.extend(value)

    def collect_query(self, query: dict[str, list[str]]) -> None:
        for k, values in query.items():
            for v in values:
                self.add(k, v)
        for v in self.experiments | self.runs | self.logged_models:
            if not v:
                raise InvalidInput("an id in the query is empty")
