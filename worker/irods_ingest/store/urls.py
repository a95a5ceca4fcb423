"""Redis URLs: the ``redis+sentinel://`` grammar (parsed into a :class:`SentinelTarget`) and
:func:`redacted`, which hides every password a URL may hold. Pure functions, no I/O; the
clients are made in :mod:`irods_ingest.store.connection` (its docstring gives the grammar).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from redis.backoff import NoBackoff
from redis.retry import Retry

from irods_ingest.errors import PermanentError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379
SENTINEL_URL_FORM = "redis+sentinel://[[user]:password@]host1[:port1][,host2[:port2]...]/service_name[/db]"
# Query parameters whose values are secrets: redacted() hides them.
_SECRET_QUERY_KEYS = frozenset({"password", "sentinel_password"})
_TLS_QUERY_KEYS = frozenset({"ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
                             "ssl_check_hostname"})
_SENTINEL_QUERY_KEYS = frozenset({"sentinel_password", "sentinel_username", "ssl"}) | _TLS_QUERY_KEYS
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _split(url: str) -> tuple[str, str, str, str, str]:
    """``scheme, netloc, path, query, fragment`` without validating hosts (a Sentinel URL lists several)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("no scheme://")
    rest, hashmark, fragment = rest.partition("#")
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    return scheme, netloc, slash + path, query, hashmark + fragment


def redacted(url: str) -> str:
    """The URL with any password replaced, safe for logs and error messages.

    Hides the password of the user information and the values of ``password`` and
    ``sentinel_password`` query parameters; everything else (hosts, path) is kept as written.
    """
    try:
        scheme, netloc, path, query, fragment = _split(url)
    except ValueError:
        return url
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    if query:
        query = "&".join(
            f"{item.split('=', 1)[0]}=***" if unquote(item.split("=", 1)[0]) in _SECRET_QUERY_KEYS else item
            for item in query.split("&")
        )
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "") + fragment


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES if "://" in url else False


@dataclass(frozen=True)
class SentinelTarget:
    """A parsed ``redis+sentinel://`` URL (see the module docstring for the grammar)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    tls_options: dict[str, Any] = field(default_factory=dict)

    def sentinel_kwargs(self) -> dict[str, Any]:
        """Options of the connections to the sentinels: short timeouts, no retries of their own
        (discovery moves on to the next sentinel; the master client's retries cover the rest)."""
        options: dict[str, Any] = {
            "socket_timeout": 5.0, "socket_connect_timeout": 5.0, "retry": Retry(NoBackoff(), 0),
            "username": self.sentinel_username, "password": self.sentinel_password,
        }
        if self.tls:
            options.update(ssl=True, **self.tls_options)
        return options

    def master_kwargs(self) -> dict[str, Any]:
        options: dict[str, Any] = {"db": self.db, "username": self.username, "password": self.password}
        if self.tls:
            options.update(ssl=True, **self.tls_options)
        return options


class _Malformed(Exception):
    """What is wrong with a Sentinel URL, and the fix (turned into a PermanentError by the parser)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


def parse_sentinel_url(url: str) -> SentinelTarget:
    """Parse a ``redis+sentinel://`` URL; a :class:`PermanentError` names what is wrong and the fix."""
    try:
        return _parse_sentinel_url(url)
    except _Malformed as exc:
        raise PermanentError(
            f"Redis Sentinel URL {redacted(url)!r} {exc.problem} ({exc.fix}; the form is {SENTINEL_URL_FORM})"
        ) from None


def _parse_sentinel_url(url: str) -> SentinelTarget:
    try:
        scheme, netloc, path, query_text, _ = _split(url)
    except ValueError:
        raise _Malformed("has no scheme", "start it with redis+sentinel://") from None
    scheme = scheme.lower()
    if scheme not in SENTINEL_SCHEMES:
        raise _Malformed("is not a redis+sentinel:// or rediss+sentinel:// URL", "start it with redis+sentinel://")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    service, db = _parse_path(path)
    query = _parse_query(query_text)
    tls, tls_options = _parse_tls(scheme == "rediss+sentinel", query)
    return SentinelTarget(
        sentinels=_parse_hosts(hostlist), service=service, db=db, username=username, password=password,
        sentinel_username=query.get("sentinel_username") or None,
        sentinel_password=query.get("sentinel_password") or None, tls=tls, tls_options=tls_options,
    )


def _parse_hosts(hostlist: str) -> tuple[tuple[str, int], ...]:
    if not hostlist.strip():
        raise _Malformed("names no sentinel host", "list the sentinels as host:port, separated by commas")
    sentinels: list[tuple[str, int]] = []
    for raw in hostlist.split(","):
        entry = raw.strip()
        if not entry:
            raise _Malformed("has an empty entry in its host list", "separate the sentinels by single commas")
        if entry.startswith("["):
            host, bracket, rest = entry[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise _Malformed(f"has a malformed IPv6 sentinel address {entry!r}", "write it as [address]:port")
            port_text = rest[1:]
        else:
            host, _, port_text = entry.partition(":")
        if not host:
            raise _Malformed(f"has a sentinel without a host name ({entry!r})", "write each sentinel as host:port")
        if port_text and (not port_text.isdigit() or not 0 < int(port_text) < 65536):
            raise _Malformed(f"has an invalid port in sentinel {entry!r}", "give a port number from 1 to 65535")
        sentinels.append((host, int(port_text) if port_text else DEFAULT_SENTINEL_PORT))
    return tuple(sentinels)


def _parse_path(path: str) -> tuple[str, int]:
    segments = [unquote(s) for s in path.split("/")[1:]]
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash
    if not segments or not segments[0]:
        raise _Malformed("names no service", "put the name the sentinels monitor the master under after the "
                         "hosts, e.g. redis+sentinel://sentinel:26379/mymaster/0")
    if len(segments) > 2:
        raise _Malformed(f"has too many path segments ({path!r})", "the path is /service_name or /service_name/db")
    if len(segments) == 2 and not segments[1].isdigit():
        raise _Malformed(f"has an invalid database number {segments[1]!r}", "the database is a number such as 0")
    return segments[0], int(segments[1]) if len(segments) == 2 else 0


def _parse_query(query_text: str) -> dict[str, str]:
    query: dict[str, str] = {}
    for key, value in parse_qsl(query_text, keep_blank_values=True):
        if key not in _SENTINEL_QUERY_KEYS:
            raise _Malformed(f"has an unknown query parameter {key!r}",
                             f"the parameters are {', '.join(sorted(_SENTINEL_QUERY_KEYS))}")
        query[key] = value
    return query


def _flag(query: dict[str, str], key: str) -> bool | None:
    if key not in query:
        return None
    value = query[key].lower()
    if value not in _TRUE + _FALSE:
        raise _Malformed(f"has {key}={query[key]!r}", f"use {key}=true or {key}=false")
    return value in _TRUE


def _parse_tls(secure_scheme: bool, query: dict[str, str]) -> tuple[bool, dict[str, Any]]:
    ssl = _flag(query, "ssl")
    if secure_scheme and ssl is False:
        raise _Malformed("asks for rediss+sentinel:// (TLS) and ssl=false at once", "drop one of them")
    tls = secure_scheme or bool(ssl)
    options: dict[str, Any] = {}
    for key in sorted(_TLS_QUERY_KEYS & query.keys()):
        if not tls:
            raise _Malformed(f"sets {key} without TLS", "use rediss+sentinel:// or add ssl=true")
        options[key] = _flag(query, key) if key == "ssl_check_hostname" else query[key]
    return tls, options
