"""What both web layers (the control plane and the server extension) check of a request
against docs/openapi.yaml before a handler runs, as one mixin for their tornado handlers."""
from __future__ import annotations

from . import api_schema, json_body


class DocumentedRequests:
    """Mixin (before the tornado handler class) for routes the OpenAPI document describes.

    A handler says which part of the document it serves and where it is mounted in
    ``api_operations``; the mixin finds the request's operation, decodes URL arguments through
    ``core.json_body`` and checks path and query parameters against the document.
    """

    def api_operations(self) -> api_schema.Operations:
        raise NotImplementedError

    def operation(self):
        """The documented operation of this request and its path parameters, or None."""
        return self.api_operations().find(self.request.method, self.request.path)

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        in_path = name is None or not (name in self.request.query_arguments
                                       or name in self.request.body_arguments)
        return json_body.decode_argument(value, name, in_path=in_path)

    def check_url(self) -> None:
        """Path and query parameters against the document: 404 for a path naming nothing,
        400 for a query value that is not a number in its range or misses its pattern."""
        found = self.operation()
        if found:
            op, params = found
            op.check_path(params)
            op.check_query(lambda name: self.get_query_argument(name, None))
