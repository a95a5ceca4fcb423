"""Redis connections: URL (password, ``rediss://`` TLS, DB number), retries, error translation.

Connection errors are retried with capped exponential backoff by redis-py's own retry
machinery; anything still failing surfaces as :class:`StoreUnavailable` (retryable), and
an authentication failure as a :class:`PermanentError` that says which setting is wrong.
Nothing connects at import time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from irods_ingest.errors import PermanentError, StoreUnavailable

REDIS_URL_ENV = "IRODS_INGEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CONNECT_RETRIES = 6

# The client type the rest of the engine may name without importing redis.
RedisClient = redis.Redis


def redacted(url: str) -> str:
    """The URL with any password replaced, safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.hostname or ""
    netloc = f"{parts.username}:***@{netloc}" if parts.username else f":***@{netloc}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def resolve_url(url: str | None) -> str:
    return url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def connect(url: str | None = None, *, socket_timeout: float = 30.0) -> redis.Redis:
    """A client for ``url`` (or ``$IRODS_INGEST_REDIS_URL``) with bounded retries.

    The returned client answers bytes; callers decode. Verifies the connection with a
    PING so that a wrong password or host fails here, with a clear message.
    """
    resolved = resolve_url(url)
    if not resolved.startswith(("redis://", "rediss://", "unix://")):
        raise PermanentError(
            f"Redis URL {redacted(resolved)!r} is not a redis://, rediss:// or unix:// URL "
            f"(set --redis-url or {REDIS_URL_ENV})"
        )
    # One attempt without retries first: redis-py's AuthenticationError is a ConnectionError,
    # so the retrying client below would retry a refused password for many seconds (40 s
    # without any password) before saying so. An unreachable Redis goes on to those retries.
    probe = redis.Redis.from_url(resolved, socket_connect_timeout=5.0, retry=Retry(NoBackoff(), 0))
    try:
        with translated_errors(resolved):
            probe.ping()
    except StoreUnavailable:
        pass
    finally:
        probe.close()
    client = redis.Redis.from_url(
        resolved,
        socket_timeout=socket_timeout,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), CONNECT_RETRIES),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
    )
    with translated_errors(resolved):
        client.ping()
    return client


@contextmanager
def translated_errors(url: str = "") -> Iterator[None]:
    """Map redis-py exceptions onto the engine's taxonomy."""
    where = f" at {redacted(url)}" if url else ""
    try:
        yield
    except redis.AuthenticationError as exc:
        if "HELLO must be called" in str(exc) or "Authentication required" in str(exc):
            raise PermanentError(
                f"Redis{where} requires a password (put it in the URL: redis://:PASSWORD@host:port/db)"
            ) from exc
        raise PermanentError(
            f"Redis{where} refused the password: {exc} (check the password in the Redis URL)"
        ) from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis{where} is unreachable: {exc}") from exc
    except redis.ResponseError as exc:
        text = str(exc)
        if "NOAUTH" in text or "WRONGPASS" in text:
            raise PermanentError(
                f"Redis{where} requires a valid password: {exc} (put it in the URL: redis://:PASSWORD@host:port/db)"
            ) from exc
        if text.startswith(("LOADING", "BUSY", "READONLY", "TRYAGAIN", "MASTERDOWN")):
            raise StoreUnavailable(f"Redis{where} is not ready: {exc}") from exc
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or "used memory > 'maxmemory'" in text:
            # maxmemory reached (noeviction): writes are refused until memory is freed. Retryable:
            # workers back off and carry on, and nothing they hold is lost meanwhile. (redis-py
            # drops the "OOM" prefix; a pipeline prefixes "Command # N (...) of pipeline caused error".)
            raise StoreUnavailable(f"Redis{where} is out of memory (maxmemory reached): {exc}") from exc
        raise PermanentError(f"Redis{where} refused a command: {exc}") from exc
    except redis.RedisError as exc:
        raise StoreUnavailable(f"Redis{where} failed: {exc}") from exc


def reply_text(value: bytes | str | None) -> str:
    """A Redis reply as text ("" for none): clients answer bytes."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value

