"""``python -m streamtune_predictor``: read the environment, configure logging, serve."""

from __future__ import annotations

from streamtune_shared.web import run_service

from .app import create_app
from .config import PredictorSettings


def main() -> None:
    """Run the predictor until SIGTERM."""
    run_service("predictor", PredictorSettings, create_app)


if __name__ == "__main__":
    main()
