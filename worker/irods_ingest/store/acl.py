"""Redis credentials of one job's workers: an ACL user whose keys are that job's only.

The controller (the operator) creates the user with ``ACL SETUSER``; its rules come from
:meth:`irods_ingest.store.keys.JobKeys.worker_acl_rules`: read-write ``ii:{job}:*``,
read-only ``iic:{job}:*`` (config and handler code), the engine's commands and nothing
else. A holder of the credential can therefore disturb its own job at most — never read
another job's handler, push tasks into another job's queue, or list the keyspace.

Passwords never enter Redis: users are set by the SHA-256 of their password (``#<hex>``),
and the controller keeps those digests in the job's control hash so that it can recreate
the user when Redis lost it (ACL users live only in memory unless Redis has an aclfile).
A user holds at most two passwords: the current one and the one before it, so workers
started with the previous credential keep working while a rotation rolls them.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import redis

from irods_ingest.store.connection import translated_errors
from irods_ingest.store.keys import JobKeys
from irods_ingest.store.urls import is_sentinel_url, parse_sentinel_url

USER_PREFIX = "ii-job:"
# The job's control hash keeps the credential's state under this field (JSON, no secret in it).
CREDENTIAL_FIELD = "op:credential"
MAX_PASSWORDS = 2


def job_user(job: str) -> str:
    """The ACL user name of ``job``'s workers."""
    return f"{USER_PREFIX}{job}"


def password_digest(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def new_password() -> str:
    return secrets.token_urlsafe(32)


def url_with_credentials(base_url: str, user: str, password: str) -> str:
    """``base_url`` (no credentials) with ``user:password@`` added, both percent-encoded."""
    parts = urlsplit(base_url)
    if parts.username or parts.password:
        raise ValueError("the workers' base Redis URL must not carry credentials")
    host = parts.netloc
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def without_credentials(url: str) -> str:
    """``url`` with any user and password removed (what workers may be told of the operator's URL)."""
    if is_sentinel_url(url):  # several hosts: urlsplit cannot read the port; drop the user information only
        scheme, _, rest = url.partition("://")
        netloc, sep, tail = rest.partition("/")
        return f"{scheme}://{netloc.rpartition('@')[2]}{sep}{tail}"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def selects_database(url: str) -> bool:
    """Whether a client of ``url`` sends SELECT (a database other than 0)."""
    if is_sentinel_url(url):  # /service_name[/db]
        return parse_sentinel_url(url).db != 0
    path = urlsplit(url).path.strip("/")
    return bool(path) and path != "0"


@dataclass(frozen=True)
class CredentialState:
    """What the controller remembers of a job's credential (digests only, never a password)."""

    version: int = 0
    digests: tuple[str, ...] = ()  # newest first, at most MAX_PASSWORDS
    rotated: float = 0.0  # when the current password was made (epoch seconds)

    @property
    def tag(self) -> str:
        """Changes with every rotation, also after Redis lost the state and versions restart."""
        return f"{self.version}.{int(self.rotated)}"

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "digests": list(self.digests), "rotated": self.rotated})

    @classmethod
    def from_json(cls, raw: str | None) -> CredentialState:
        if not raw:
            return cls()
        try:
            data: dict[str, Any] = json.loads(raw)
            return cls(int(data["version"]), tuple(str(d) for d in data["digests"])[:MAX_PASSWORDS], float(data["rotated"]))
        except (ValueError, KeyError, TypeError):
            return cls()  # unreadable: the caller rotates, which repairs it

    def rotated_to(self, password: str, now: float) -> CredentialState:
        return CredentialState(self.version + 1, (password_digest(password), *self.digests)[:MAX_PASSWORDS], now)


@dataclass(frozen=True)
class NewCredential:
    """A password just made: the caller hands it to the workers (a Kubernetes Secret), once."""

    state: CredentialState
    password: str = field(repr=False)


class JobCredentials:
    """The ACL user of one job's workers (controller side; needs ACL SETUSER/GETUSER/DELUSER)."""

    def __init__(self, client: redis.Redis, job: str, *, select: bool = False) -> None:
        self.client = client
        self.job = job
        self.keys = JobKeys(job)
        self.user = job_user(job)
        self.select = select

    def state(self) -> CredentialState:
        with translated_errors():
            raw = self.client.hget(self.keys.job_hash, CREDENTIAL_FIELD)
        return CredentialState.from_json(raw.decode() if isinstance(raw, bytes) else raw)

    def user_exists(self) -> bool:
        with translated_errors():
            return self.client.execute_command("ACL", "GETUSER", self.user) is not None  # type: ignore[no-untyped-call]

    def rotate(self, now: float | None = None) -> NewCredential:
        """Make a new password and let the user accept it and the previous one (only).

        Not remembered until :meth:`commit`: a caller that fails to hand the password over
        (its Secret write failed) simply rotates again next time, and the user then holds
        that newer password and the last committed one.
        """
        password = new_password()
        state = self.state().rotated_to(password, time.time() if now is None else now)
        self._apply(state.digests)
        return NewCredential(state, password)

    def commit(self, state: CredentialState) -> None:
        with translated_errors():
            self.client.hset(self.keys.job_hash, CREDENTIAL_FIELD, state.to_json())

    def restore(self, state: CredentialState) -> None:
        """Recreate the user from the kept digests (Redis restarted without an aclfile)."""
        self._apply(state.digests)

    def _apply(self, digests: Sequence[str]) -> None:
        rules = self.keys.worker_acl_rules(select=self.select).split()
        with translated_errors():
            # `reset` first: whatever the user had (passwords, keys, commands) is replaced whole.
            self.client.execute_command(  # type: ignore[no-untyped-call]
                "ACL", "SETUSER", self.user, "reset", "on", *(f"#{d}" for d in digests), *rules
            )

    def delete(self) -> None:
        with translated_errors():
            self.client.execute_command("ACL", "DELUSER", self.user)  # type: ignore[no-untyped-call]
