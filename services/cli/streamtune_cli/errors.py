"""One clear line on stderr and a non-zero exit code for every failure a command can meet; never a traceback."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from minio.error import S3Error
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from urllib3.exceptions import HTTPError as Urllib3Error

from .output import err_console

FAILED = 1  # the command ran and something failed (a refused connection, a bad input line, a failed run)
USAGE = 2  # the command could not start as asked (bad flags, missing settings), as click reports usage errors
DEBUG_ENV = "STREAMTUNE_CLI_DEBUG"

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A failure to report as one line; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def describe(exc: BaseException) -> tuple[str, int]:
    """The one-line message and exit code of an exception a command let through."""
    if isinstance(exc, CliError):
        return exc.message, exc.code
    if isinstance(exc, AuthenticationError):
        return "Redis refused the credentials in STREAMTUNE_REDIS_URL", FAILED
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return f"cannot reach Redis (STREAMTUNE_REDIS_URL): {_first_line(exc)}", FAILED
    if isinstance(exc, ResponseError):
        return f"Redis refused the command: {_first_line(exc)}", FAILED
    if isinstance(exc, S3Error):
        if exc.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            return (f"the object store refused the credentials ({exc.code}): check STREAMTUNE_S3_ACCESS_KEY "
                    "and STREAMTUNE_S3_SECRET_KEY"), FAILED
        return f"object store error {exc.code}: {exc.message}", FAILED
    if isinstance(exc, Urllib3Error):
        return f"cannot reach the object store (STREAMTUNE_S3_ENDPOINT): {type(exc).__name__}", FAILED
    if isinstance(exc, OSError):
        return f"{exc.strerror or type(exc).__name__}: {exc.filename or ''}".rstrip(": "), FAILED
    return f"unexpected {type(exc).__name__}: {_first_line(exc)} (set {DEBUG_ENV}=1 for the traceback)", FAILED


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so any failure ends it with one line on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            message, code = describe(exc)
            err_console.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(code) from None

    return wrapper
