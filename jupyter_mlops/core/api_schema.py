"""The OpenAPI document (docs/openapi.yaml) as the input check of both web layers.

Each web layer finds the operation a request is for and checks its path parameters, integer
query parameters and JSON body against the schemas the document states, so the document and
the code cannot disagree about what a route accepts:

* a path parameter that fails its schema (an integer id beyond 64 bits, a value outside an enum
  or a pattern) names nothing: 404;
* a query parameter that is not a whole number in its range where the document says
  ``integer``, or does not match its ``pattern``: 400 naming it;
* a JSON body holding a field of another type than its schema states (at any depth): 400
  naming the field and the type it must be. Value rules of the body (patterns, enums, ranges,
  required and unknown fields) stay with the domain, which words its own refusals.

The document ships inside the package (``jupyter_mlops/openapi.yaml`` in a wheel) and is read
from ``docs/openapi.yaml`` in a checkout.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from .errors import InvalidInput, NotFound
from .json_body import INT_MAX, INT_MIN

SERVICE = "/services/mlops/"  # the control plane's paths in the document
SERVER = "/user/{user}/mlops/"  # the server extension's
_PACKAGE = Path(__file__).resolve().parents[1]
CANDIDATES = (_PACKAGE / "openapi.yaml", _PACKAGE.parent / "docs" / "openapi.yaml")


@functools.lru_cache(maxsize=1)
def document() -> dict:
    import yaml

    for path in CANDIDATES:
        if path.is_file():
            return yaml.safe_load(path.read_text())
    # Fail closed: a web layer without its input schemas must not start serving.
    raise RuntimeError(f"the OpenAPI document is missing (looked in {', '.join(map(str, CANDIDATES))})")


# What the body check enforces: the type of every field, at any depth. Values (patterns,
# enums, ranges, required and unknown fields) are the domain's to refuse, in its own words
# ("unknown job field 'colour'"), and tests/test_fuzz.py holds its answers to the document.
_STRUCTURE = ("$ref", "$dynamicRef", "type", "properties", "items", "prefixItems", "allOf",
              "anyOf", "patternProperties")


@functools.lru_cache(maxsize=1)
def _validator_class():
    from jsonschema import Draft202012Validator, validators
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    keywords = {k: v for k, v in Draft202012Validator.VALIDATORS.items() if k in _STRUCTURE}
    extra = Draft202012Validator.VALIDATORS["additionalProperties"]
    # additionalProperties: false (no unknown fields) is a value rule; a schema is a type rule
    keywords["additionalProperties"] = (
        lambda v, ap, inst, schema: () if ap is False else extra(v, ap, inst, schema))
    # without the value rules two branches may both match: any one matching is enough
    keywords["oneOf"] = Draft202012Validator.VALIDATORS["anyOf"]
    types = validators.create(meta_schema=Draft202012Validator.META_SCHEMA,
                              validators=keywords,
                              type_checker=Draft202012Validator.TYPE_CHECKER,
                              format_checker=None, version="openapi-types")
    registry = Registry().with_resource("urn:openapi",
                                        Resource(document(), specification=DRAFT202012))
    return types, registry


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class Operation:
    """One documented method of one path."""

    template: str
    method: str
    path_params: dict = field(default_factory=dict)  # name -> schema
    query_params: dict = field(default_factory=dict)  # name -> schema
    body_ref: str | None = None  # JSON pointer of the application/json body schema

    def check_path(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            schema = self.path_params.get(name) or {}
            if not _matches(schema, value):
                raise NotFound(f"nothing is named {value[:80]!r} here ({name})")

    def check_query(self, get) -> None:
        """``get(name)`` is the raw query value or None."""
        for name, schema in self.query_params.items():
            raw = get(name)
            if raw is None or raw == "":
                continue
            if schema.get("type") == "integer":
                lo = max(schema.get("minimum", INT_MIN), INT_MIN)
                hi = min(schema.get("maximum", INT_MAX), INT_MAX)
                if not re.fullmatch(r"-?[0-9]{1,20}", raw) or not lo <= int(raw) <= hi:
                    raise InvalidInput(f"{name} must be a whole number from {lo} to {hi}, "
                                       f"not {raw[:40]!r}")
            elif "pattern" in schema and not re.search(schema["pattern"], raw):
                raise InvalidInput(f"{name} must match {schema['pattern']}, not {raw[:40]!r}")

    @functools.cached_property
    def _validator(self):
        cls, registry = _validator_class()
        return cls({"$ref": "urn:openapi#/" + self.body_ref}, registry=registry)

    def check_body(self, body) -> None:
        if self.body_ref is None:
            return
        errors = sorted(self._validator.iter_errors(body), key=lambda e: (len(e.absolute_path),
                                                                            str(e.absolute_path)))
        if errors:
            raise InvalidInput(_describe(errors[0]), field=_field(errors[0]))


def _matches(schema: dict, value: str) -> bool:
    if schema.get("type") == "integer":
        if not re.fullmatch(r"-?[0-9]{1,20}", value):
            return False
        lo = max(schema.get("minimum", INT_MIN), INT_MIN)
        return lo <= int(value) <= min(schema.get("maximum", INT_MAX), INT_MAX)
    if "enum" in schema and value not in schema["enum"]:
        return False
    return "pattern" not in schema or re.search(schema["pattern"], value) is not None


def _field(error) -> str:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = re.match(r"'([^']+)'", error.message)
        if missing:
            path.append(missing.group(1))
    if error.validator == "additionalProperties":
        extra = re.findall(r"'([^']+)'", error.message)
        if extra:
            path.append(extra[0])
    return ".".join(str(p) for p in path) or "body"


def _describe(error) -> str:
    name = _field(error)
    if error.validator == "required":
        return f"'{name}' is required"
    if error.validator == "additionalProperties":
        return f"'{name}' is not a field of this request"
    schema = error.schema if isinstance(error.schema, dict) else {}
    wanted = {
        "type": lambda: "of type " + " or ".join(
            [schema["type"]] if isinstance(schema["type"], str) else schema["type"]),
        "enum": lambda: "one of " + ", ".join(map(repr, schema["enum"])),
        "pattern": lambda: f"text matching {schema['pattern']}",
        "minimum": lambda: f"at least {schema['minimum']}",
        "maximum": lambda: f"at most {schema['maximum']}",
        "maxLength": lambda: f"at most {schema['maxLength']} characters",
        "minLength": lambda: f"at least {schema['minLength']} characters",
        "maxItems": lambda: f"at most {schema['maxItems']} items",
        "format": lambda: f"a {schema['format']}",
    }.get(error.validator)
    what = wanted() if wanted else error.message[:200]
    return f"'{name}' must be {what}" if wanted else f"'{name}': {what}"


class Operations:
    """The documented operations under one prefix of the document, matched by request path."""

    def __init__(self, spec_prefix: str, actual_prefix: str):
        spec = document()
        _validator_class()  # its imports take a second: at start, not in the first request
        self._table: list[tuple[re.Pattern, int, Operation]] = []
        for template, item in spec.get("paths", {}).items():
            if not template.startswith(spec_prefix):
                continue
            rest = template[len(spec_prefix):]
            names = re.findall(r"\{([^}]+)\}", rest)
            regex = re.escape(actual_prefix.rstrip("/") + "/") + re.sub(
                r"\\\{[^}]+\\\}", "([^/]+)", re.escape(rest))
            shared = item.get("parameters", [])
            for method, op in item.items():
                if method == "parameters" or not isinstance(op, dict):
                    continue
                params = [*shared, *op.get("parameters", [])]
                operation = Operation(
                    template, method,
                    path_params={p["name"]: p.get("schema", {}) for p in params
                                 if p.get("in") == "path"},
                    query_params={p["name"]: p.get("schema", {}) for p in params
                                  if p.get("in") == "query"})
                content = (op.get("requestBody") or {}).get("content", {})
                if "application/json" in content and "schema" in content["application/json"]:
                    operation.body_ref = _pointer("paths", template, method, "requestBody",
                                                  "content", "application/json", "schema")
                operation.path_params = {n: operation.path_params.get(n, {}) for n in names}
                # Literal segments win over parameters: datasets/jobs/{id} before {name}/...
                self._table.append((re.compile(regex + r"\Z"), len(names),
                                    operation))
        self._table.sort(key=lambda row: row[1])

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        method = method.lower()
        for regex, _, op in self._table:
            if op.method != method:
                continue
            m = regex.match(path)
            if m:
                return op, dict(zip(op.path_params, map(unquote, m.groups())))
        return None


@functools.lru_cache(maxsize=8)
def operations(spec_prefix: str, actual_prefix: str) -> Operations:
    return Operations(spec_prefix, actual_prefix)
