"""deploy/local's stack and processes helpers (imported by path, as the root conftest sets up)."""

from __future__ import annotations

import pytest
import stack
from redis.connection import parse_url


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/15"),
    ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379/15"),
    ("redis://127.0.0.1:6379/", "redis://127.0.0.1:6379/15"),
    ("redis://:s3cret@redis.internal:6380/2?socket_timeout=5&health_check_interval=10",
     "redis://:s3cret@redis.internal:6380/15?socket_timeout=5&health_check_interval=10"),
    ("rediss://user:pw@cache.example:6379?ssl_cert_reqs=none",
     "rediss://user:pw@cache.example:6379/15?ssl_cert_reqs=none"),
    ("redis://127.0.0.1:6379/0?db=3&socket_timeout=5", "redis://127.0.0.1:6379/15?socket_timeout=5&db=15"),
    ("unix:///run/redis.sock?db=2", "unix:///run/redis.sock?db=15"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock?db=15"),
])
def test_redis_url_for_db_moves_only_the_database(url, expected):
    assert stack.redis_url_for_db(url, 15) == expected


@pytest.mark.parametrize("url", [
    "redis://127.0.0.1:6379", "redis://:pw@h:6380/2?socket_timeout=5", "redis://h/0?db=3", "unix:///run/redis.sock",
])
def test_redis_py_reads_the_rewritten_url_as_the_same_server_on_the_new_database(url):
    before, after = parse_url(url), parse_url(stack.redis_url_for_db(url, 15))
    assert after.pop("db") == 15
    before.pop("db", None)
    assert after == before
