"""The Jupyter server extension: thin, authenticated routes between the lab and the platform."""
from .routes import setup_route_handlers
from .settings import MlopsSettings


def load(server_app) -> None:
    settings = MlopsSettings(parent=server_app)
    setup_route_handlers(server_app.web_app, settings)
    server_app.log.info("jupyter_mlops server extension loaded")
