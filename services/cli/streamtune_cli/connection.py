"""Connection settings, read as the services read them: ``STREAMTUNE_*`` from the environment, then ``.stack/env``.

The environment wins over the file, so ``STREAMTUNE_REDIS_URL=... streamtune status`` points anywhere.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr, ValidationError
from redis import Redis
from streamtune_shared.settings import InfraSettings
from streamtune_shared.storage import MinioObjectStore, minio_store

from .errors import USAGE, CliError

# Written by `deploy/local/stack.py up` (`make up`); read from the folder the command runs in.
STACK_ENV_FILE = Path(".stack") / "env"
REDIS_CONNECT_TIMEOUT_S = 5.0


class _RedisOnlySettings(InfraSettings):
    """The shared settings where the object-store keys may be missing: commands that only use Redis."""

    s3_access_key: SecretStr | None = None  # type: ignore[assignment]
    s3_secret_key: SecretStr | None = None  # type: ignore[assignment]


def load_settings(*, needs_object_store: bool = True) -> InfraSettings:
    """The infrastructure settings; a missing or invalid one is a one-line ``CliError`` naming its variable."""
    env_file = STACK_ENV_FILE if STACK_ENV_FILE.is_file() else None
    settings_class = InfraSettings if needs_object_store else _RedisOnlySettings
    try:
        return settings_class(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise CliError(settings_problem(exc), USAGE) from None


def settings_problem(exc: ValidationError) -> str:
    """What is wrong with the settings, by environment variable name, without echoing any value."""
    missing, invalid = [], []
    for error in exc.errors(include_input=False, include_url=False):
        name = "STREAMTUNE_" + "_".join(str(part) for part in error["loc"]).upper()
        (missing if error["type"] == "missing" else invalid).append(name)
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing)}")
    if invalid:
        parts.append(f"invalid {', '.join(invalid)}")
    return "; ".join(parts) + f" (set them in the environment or run where {STACK_ENV_FILE} is)"


def redis_client(settings: InfraSettings) -> Redis:
    """A blocking Redis client (bytes in, bytes out); connecting is checked by the first command."""
    return Redis.from_url(settings.redis_url.get_secret_value(), socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S)


def object_store(settings: InfraSettings) -> MinioObjectStore:
    """The object store's bucket (created when missing, as the services do)."""
    return minio_store(settings)


def connect_redis(*, needs_object_store: bool = False) -> tuple[InfraSettings, Redis]:
    """Settings and a Redis client for the commands that work on streams."""
    settings = load_settings(needs_object_store=needs_object_store)
    return settings, redis_client(settings)
