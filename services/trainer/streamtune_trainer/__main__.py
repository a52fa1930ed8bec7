"""``python -m streamtune_trainer``: read the environment, configure logging, serve."""

from __future__ import annotations

from streamtune_shared.web import run_service
from transformers.utils import logging as transformers_logging

from .app import create_app
from .config import TrainerSettings


def _quiet_transformers(_: TrainerSettings) -> None:
    # Weight-loading reports and bars would bypass structured logs.
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def main() -> None:
    """Run the trainer until SIGTERM."""
    run_service("trainer", TrainerSettings, create_app, prepare=_quiet_transformers)


if __name__ == "__main__":
    main()
