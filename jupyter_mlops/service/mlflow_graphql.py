"""Scoping of MLflow's GraphQL endpoint: the document is parsed, not searched for keys.

Only the root fields MLflow's UI uses are allowed (:data:`ROOT_FIELDS`); every field of every
operation and fragment of the document has its arguments evaluated the way the server will
evaluate them -- inline literals, variables, and variable defaults when a variable is not given
-- and each experiment, run and logged-model id found is then checked like a REST request's.
Aliases, fragments, several operations in one document and GraphQL sent over GET (MLflow reads
the JSON body of a GET too) therefore reach nothing that the same REST call would not.
"""
from __future__ import annotations

from graphql import GraphQLError, parse
from graphql.language import ast
from graphql.utilities import value_from_ast_untyped

from ..core.errors import Forbidden, InvalidInput
from .mlflow_ids import Ids, check_depth

# root field -> what it must name ("" = nothing to scope)
ROOT_FIELDS = {
    "query": {
        "mlflowGetExperiment": "experiment",
        "mlflowGetRun": "run",
        "mlflowListArtifacts": "run",
        "mlflowGetMetricHistoryBulkInterval": "run",
        "mlflowSearchRuns": "experiments",
        "test": "",
        "__typename": "",
    },
    "mutation": {
        "mlflowSearchRuns": "experiments",
        "mlflowSearchDatasets": "experiments",
        "testMutation": "",
        "__typename": "",
    },
}
MAX_TOKENS = 5000


def graphql_ids(request) -> Ids:
    """Every id the GraphQL request (its decoded JSON body; MLflow reads nothing else, over
    GET too) names; ``Forbidden`` for a root field outside :data:`ROOT_FIELDS`,
    ``InvalidInput`` for a malformed request."""
    if not isinstance(request, dict):
        raise InvalidInput("a GraphQL request is a JSON body {query, variables, operationName}")
    document, variables = request.get("query"), request.get("variables") or {}
    if not isinstance(document, str) or not document.strip():
        raise InvalidInput("'query' is required (a GraphQL document)")
    if not isinstance(variables, dict):
        raise InvalidInput("'variables' must be a JSON object")
    check_depth(variables)
    try:
        doc = parse(document, max_tokens=MAX_TOKENS)
    except GraphQLError as e:
        raise InvalidInput(f"GraphQL syntax error: {e.message}") from None
    except RecursionError:
        raise InvalidInput("the GraphQL document is nested too deeply") from None

    fragments = {d.name.value: d for d in doc.definitions
                 if isinstance(d, ast.FragmentDefinitionNode)}
    ids = Ids()
    for op in doc.definitions:
        if not isinstance(op, ast.OperationDefinitionNode):
            continue
        allowed = ROOT_FIELDS.get(op.operation.value)
        if allowed is None:
            raise Forbidden(f"GraphQL {op.operation.value} operations are not offered")
        values = _variables(op, variables)
        for f in _fields(op.selection_set, fragments, top_only=True):
            kind = allowed.get(f.name.value)
            if kind is None:
                raise Forbidden(f"the GraphQL field {f.name.value!r} is not offered "
                                "through this platform's gateway")
            named = Ids()
            for arg in f.arguments or ():
                _collect(named, arg.name.value, value_from_ast_untyped(arg.value, values))
            if kind == "experiments" and not named.experiments:
                raise InvalidInput(f"{f.name.value}: name the experiments (experimentIds)")
            if kind == "run" and not named.runs:
                raise InvalidInput(f"{f.name.value}: name the run (runId / runIds)")
            if kind == "experiment" and not named.experiments:
                raise InvalidInput(f"{f.name.value}: name the experiment (experimentId)")
            _merge(ids, named)
        # nested fields' arguments too (none of MLflow's take ids today; fail closed anyway)
        for f in _fields(op.selection_set, fragments, top_only=False):
            for arg in f.arguments or ():
                _collect(ids, arg.name.value, value_from_ast_untyped(arg.value, values))
    return ids


def _variables(op: ast.OperationDefinitionNode, given: dict) -> dict:
    """Variable values as the server sees them: given, else the definition's default."""
    values = {}
    for d in op.variable_definitions or ():
        name = d.variable.name.value
        if name in given:
            values[name] = given[name]
        elif d.default_value is not None:
            values[name] = value_from_ast_untyped(d.default_value)
    return values


def _fields(selection_set, fragments: dict, top_only: bool):
    """Field nodes of a selection set through inline fragments and fragment spreads (each
    fragment once); with ``top_only`` the fields of this level only."""
    seen: set[str] = set()
    stack = [selection_set]
    while stack:
        sel_set = stack.pop()
        if sel_set is None:
            continue
        for sel in sel_set.selections:
            if isinstance(sel, ast.FieldNode):
                yield sel
                if not top_only:
                    stack.append(sel.selection_set)
            elif isinstance(sel, ast.InlineFragmentNode):
                stack.append(sel.selection_set)
            elif isinstance(sel, ast.FragmentSpreadNode):
                name = sel.name.value
                if name in seen:
                    continue
                seen.add(name)
                if name not in fragments:
                    raise InvalidInput(f"unknown GraphQL fragment {name!r}")
                stack.append(fragments[name].selection_set)


def _collect(ids: Ids, key: str, value) -> None:
    if isinstance(value, dict):
        ids.collect(value)
    else:
        ids.collect({key: value})


def _merge(into: Ids, other: Ids) -> None:
    into.experiments |= other.experiments
    into.runs |= other.runs
    into.logged_models |= other.logged_models
