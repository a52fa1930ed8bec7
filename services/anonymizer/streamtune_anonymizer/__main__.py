"""``python -m streamtune_anonymizer``: read the environment, configure logging, serve."""

from __future__ import annotations

from streamtune_shared.web import run_service

from .app import create_app
from .config import AnonymizerSettings


def main() -> None:
    """Run the anonymizer; it refuses to start on invalid settings or a weak pseudonym key."""
    run_service("anonymizer", AnonymizerSettings, create_app)


if __name__ == "__main__":
    main()
