"""Redis connections: URL (password, ``rediss://`` TLS, DB number, Sentinel), retries, error translation.

Connection errors are retried with capped exponential backoff by redis-py's own retry
machinery; anything still failing surfaces as :class:`StoreUnavailable` (retryable), and
an authentication failure as a :class:`PermanentError` that says which setting is wrong.
Nothing connects at import time.

URLs
----
``redis://[[user]:password@]host:port/db``, ``rediss://…`` (TLS) and ``unix://…`` as redis-py
reads them, and, for a Redis managed by Sentinel::

    redis+sentinel://[[user]:password@]host1[:port1][,host2[:port2]...]/service_name[/db][?query]
    rediss+sentinel://…    (TLS to the sentinels and to the master; the same as ?ssl=true)

* the hosts are the **sentinels** (port 26379 when left out; IPv6 in brackets), never the
  master: the client asks them for the master of ``service_name`` (as in ``sentinel monitor
  service_name …``) and asks again after every reconnect, so that a failover is followed;
* the user and password in front of the hosts are the Redis (master) credentials;
* ``db`` is the database number (default 0);
* query parameters: ``sentinel_password`` and ``sentinel_username`` (the sentinels' own
  credentials, when they have ``requirepass`` set; percent-encoded like the master password),
  ``ssl=true|false``, and the TLS options ``ssl_ca_certs``, ``ssl_ca_path``, ``ssl_certfile``,
  ``ssl_keyfile``, ``ssl_cert_reqs``, ``ssl_check_hostname`` (applied to sentinel and master
  connections alike). Anything else is refused with a message naming it.

During a failover, commands fail with connection errors, ``READONLY`` replies from the demoted
master or "no master found" from the sentinels; all of them are retried by the client and, past
its retries, surface as :class:`StoreUnavailable`, on which workers back off and carry on.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from irods_ingest.errors import PermanentError, StoreUnavailable
from irods_ingest.store.urls import (
    DEFAULT_SENTINEL_PORT,
    SentinelTarget,
    is_sentinel_url,
    parse_sentinel_url,
    redacted,
)

REDIS_URL_ENV = "IRODS_INGEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
CONNECT_RETRIES = 6

# The client type the rest of the engine may name without importing redis.
RedisClient = redis.Redis


def resolve_url(url: str | None) -> str:
    return url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL


def _client_options(socket_timeout: float) -> dict[str, Any]:
    """What every long-lived client gets, plain or through Sentinel."""
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": 5.0,
        "health_check_interval": 30,
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.05), CONNECT_RETRIES),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }


def _probe_options() -> dict[str, Any]:
    """One attempt without retries, to find a refused password at once (see connect)."""
    return {"socket_connect_timeout": 5.0, "retry": Retry(NoBackoff(), 0)}


def connect(url: str | None = None, *, socket_timeout: float = 30.0) -> redis.Redis:
    """A client for ``url`` (or ``$IRODS_INGEST_REDIS_URL``) with bounded retries.

    The returned client answers bytes; callers decode. Verifies the connection with a
    PING so that a wrong password or host fails here, with a clear message. A
    ``redis+sentinel://`` URL gives a client of the master Sentinel names, which follows
    failovers (see the module docstring).
    """
    resolved = resolve_url(url)
    if is_sentinel_url(resolved):
        return _connect_sentinel(resolved, socket_timeout)
    if not resolved.startswith(("redis://", "rediss://", "unix://")):
        raise PermanentError(
            f"Redis URL {redacted(resolved)!r} is not a redis://, rediss://, unix:// or redis+sentinel:// URL "
            f"(set --redis-url or {REDIS_URL_ENV})"
        )
    # One attempt without retries first: redis-py's AuthenticationError is a ConnectionError,
    # so the retrying client below would retry a refused password for many seconds (40 s
    # without any password) before saying so. An unreachable Redis goes on to those retries.
    probe = redis.Redis.from_url(resolved, **_probe_options())
    try:
        with translated_errors(resolved):
            probe.ping()
    except StoreUnavailable:
        pass
    finally:
        probe.close()
    client = redis.Redis.from_url(resolved, **_client_options(socket_timeout))
    with translated_errors(resolved):
        client.ping()
    return client


def _master_client(target: SentinelTarget, options: dict[str, Any]) -> redis.Redis:
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=target.sentinel_kwargs())  # type: ignore[no-untyped-call]
    # master_for's pool asks the sentinels for the master's address on every new connection
    # and drops connections to a demoted master (READONLY), so reconnects follow a failover.
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service, **target.master_kwargs(), **options
    )
    return client


def _connect_sentinel(url: str, socket_timeout: float) -> redis.Redis:
    target = parse_sentinel_url(url)
    check_sentinels(target, url)
    probe = _master_client(target, _probe_options())
    try:
        with translated_errors(url):
            probe.ping()
    except StoreUnavailable:
        pass
    finally:
        probe.close()
    client = _master_client(target, _client_options(socket_timeout))
    with translated_errors(url):
        client.ping()
    return client


def check_sentinels(target: SentinelTarget, url: str) -> None:
    """Ask each sentinel once which masters it monitors; a :class:`PermanentError` for what
    retrying cannot fix (refused sentinel credentials, not a sentinel, an unknown service).

    Unreachable sentinels are left to the retrying client (a :class:`StoreUnavailable` in the end).
    """
    where = f" (URL {redacted(url)})"
    answered: list[str] = []
    known: set[str] = set()
    for host, port in target.sentinels:
        address = f"{host}:{port}"
        client = redis.Redis(host, port, **target.sentinel_kwargs())
        try:
            masters = client.sentinel_masters()
        except redis.AuthenticationError as exc:
            if target.sentinel_password is None:
                raise PermanentError(
                    f"Redis Sentinel at {address} requires a password: {exc}{where} "
                    "(add sentinel_password=PASSWORD to the URL's query; the password before the hosts is the master's)"
                ) from exc
            raise PermanentError(
                f"Redis Sentinel at {address} refused the sentinel credentials: {exc}{where} "
                "(check sentinel_password and sentinel_username in the URL's query; leave them out if the "
                "sentinels have no password)"
            ) from exc
        except (redis.ConnectionError, redis.TimeoutError):
            continue
        except redis.ResponseError as exc:
            raise PermanentError(
                f"{address} refused SENTINEL MASTERS: {exc}{where} (the hosts of a redis+sentinel:// URL are "
                f"the sentinels, default port {DEFAULT_SENTINEL_PORT}, not the Redis master)"
            ) from exc
        finally:
            client.close()
        answered.append(address)
        known.update(masters if isinstance(masters, dict) else (m.get("name", "") for m in masters))
    if answered and target.service not in known:
        monitored = ", ".join(repr(name) for name in sorted(known)) or "no master"
        raise PermanentError(
            f"no Redis Sentinel knows service {target.service!r}: {', '.join(answered)} monitor {monitored}{where} "
            "(put the name of a monitored master in the URL path: redis+sentinel://HOST:PORT/SERVICE/DB)"
        )


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
    except MasterNotFoundError as exc:
        # Sentinel names no usable master: during a failover (the master is down and no replica
        # promoted yet) this passes, so it is retryable like an unreachable Redis.
        raise StoreUnavailable(f"Redis{where} has no master: {exc} (a Sentinel failover may be in progress)") from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable(f"Redis{where} is unreachable: {exc}") from exc
    except redis.ResponseError as exc:
        text = str(exc)
        if "NOAUTH" in text or "WRONGPASS" in text:
            raise PermanentError(
                f"Redis{where} requires a valid password: {exc} (put it in the URL: redis://:PASSWORD@host:port/db)"
            ) from exc
        if isinstance(exc, (redis.exceptions.ReadOnlyError, redis.exceptions.TryAgainError,
                            redis.exceptions.MasterDownError)) or text.startswith(
            ("LOADING", "BUSY", "READONLY", "TRYAGAIN", "MASTERDOWN")
        ):
            # redis-py drops the error code from the text of the classes it maps: READONLY is a
            # replica answering (a master demoted by a failover), MASTERDOWN a replica that lost it.
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
