"""The CLI against the real Redis and S3 of the root conftest: a synchronous client and an invoke helper."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from redis import Redis
from streamtune_cli.app import app
from typer.testing import CliRunner, Result

Invoke = Callable[..., Result]


@pytest.fixture
def redis_sync(infra_env: dict[str, str]) -> Iterator[Redis]:
    """A blocking client on the emptied test database."""
    client = Redis.from_url(infra_env["STREAMTUNE_REDIS_URL"])
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def invoke(infra_env: dict[str, str], redis_sync: Redis) -> Invoke:
    """Run ``streamtune ARGS`` with the test environment (Redis on the test database)."""
    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, list(args), env={**infra_env, **(env or {})})

    return run


@pytest.fixture
def invoke_s3(invoke: Invoke, infra_settings) -> Invoke:
    """As ``invoke``, on this test's own bucket."""
    return lambda *args: invoke(*args, env={"STREAMTUNE_S3_BUCKET": infra_settings.s3_bucket})
