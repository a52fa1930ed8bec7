"""``python -m streamtune_ingestion``: the only place that reads the environment."""

from __future__ import annotations

from streamtune_shared.logs import configure_logging
from streamtune_shared.web import serve

from .app import create_app
from .config import IngestionSettings


def main() -> None:
    """Read the settings, configure logging, serve until SIGTERM."""
    settings = IngestionSettings()
    configure_logging(settings.infra.log_format, settings.infra.log_level)
    serve(create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
