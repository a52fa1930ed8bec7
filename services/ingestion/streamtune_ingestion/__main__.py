"""``python -m streamtune_ingestion``: read the environment, configure logging, serve."""

from __future__ import annotations

from streamtune_shared.web import run_service

from .app import create_app
from .config import IngestionSettings


def main() -> None:
    """Run ingestion until SIGTERM."""
    run_service("ingestion", IngestionSettings, create_app)


if __name__ == "__main__":
    main()
