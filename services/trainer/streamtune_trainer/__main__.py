"""``python -m streamtune_trainer``: read the environment, configure logging, serve the app."""

from streamtune_shared.logs import configure_logging
from streamtune_shared.web import serve
from transformers.utils import logging as transformers_logging

from .app import create_app
from .config import TrainerSettings


def main() -> None:
    """Run the trainer until SIGTERM."""
    settings = TrainerSettings()
    configure_logging(settings.infra.log_format, settings.infra.log_level)
    # Weight-loading reports and bars would bypass structured logs.
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    serve(create_app(settings), settings.http_host, settings.http_port)


if __name__ == "__main__":
    main()
