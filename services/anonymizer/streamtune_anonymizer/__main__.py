"""``python -m streamtune_anonymizer``: read the environment, configure logs, serve."""

from __future__ import annotations

from pydantic import ValidationError
from streamtune_shared.logs import configure_logging
from streamtune_shared.web import serve

from .app import create_app
from .config import AnonymizerSettings


def main() -> None:
    """Start the anonymizer; refuse to start on invalid settings or a weak pseudonym key."""
    try:
        settings = AnonymizerSettings()
    except ValidationError as exc:
        raise SystemExit(f"anonymizer: refusing to start, invalid settings:\n{exc}") from None
    configure_logging(settings.infra.log_format, settings.infra.log_level)
    serve(create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
