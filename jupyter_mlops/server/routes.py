"""URL table of the server extension (under ``<base_url>mlops/api/``)."""
from jupyter_server.utils import url_path_join

from .handlers import StatusHandler

NAMESPACE = "mlops"

ROUTES = [
    (r"status", StatusHandler),
]


def setup_route_handlers(web_app, settings) -> None:
    base = url_path_join(web_app.settings["base_url"], NAMESPACE, "api")
    web_app.add_handlers(
        ".*$",
        [(url_path_join(base, path), handler, {"settings": settings}) for path, handler in ROUTES],
    )
