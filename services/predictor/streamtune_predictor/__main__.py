"""``python -m streamtune_predictor``: read the environment, configure logging, serve."""

from __future__ import annotations

import os

# Before transformers is imported anywhere: model files come from the object store, never a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from streamtune_shared.logs import configure_logging  # noqa: E402
from streamtune_shared.web import serve  # noqa: E402

from .app import create_app  # noqa: E402
from .config import PredictorSettings  # noqa: E402


def main() -> None:
    """Run the predictor until SIGTERM."""
    settings = PredictorSettings()
    configure_logging(settings.infra.log_format, settings.infra.log_level)
    serve(create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
