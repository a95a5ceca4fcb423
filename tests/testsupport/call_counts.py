"""Counting what a process asks of the API server and of Redis, without mocks.

* API calls: the kube-apiserver's own audit log (``ControlPlane(audit_users=...)``), one JSON
  line per request of the audited identity. It sees every request, also a patch that changes
  nothing (which leaves every resourceVersion as it was).
* Redis commands: ``INFO commandstats`` deltas (commands run inside Lua scripts included),
  classified as writes by the server's own command flags (``COMMAND INFO``).

Used by the idle-writes test (tests/operator/test_idle_writes_e2e.py) and bench/many_jobs.py.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

WRITE_VERBS: Final = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# Commands that change the server without carrying the `write` flag: scripts (which may write:
# what they run is counted too, under its own name), and the ACL users the operator makes.
SCRIPT_COMMANDS: Final = frozenset({"eval", "evalsha", "fcall"})
ADMIN_WRITES: Final = frozenset({"acl|setuser", "acl|deluser", "config|set", "flushall", "flushdb"})


# --------------------------------------------------------------------------- the API server
@dataclass(frozen=True)
class ApiCall:
    verb: str
    resource: str  # "syncjobs/status", "deployments", "events" ...
    name: str
    user_agent: str

    @property
    def write(self) -> bool:
        return self.verb in WRITE_VERBS

    def describe(self) -> str:
        return f"{self.verb} {self.resource}/{self.name}".rstrip("/")


class AuditLog:
    """The requests logged since :meth:`mark` (by auditID: a watch logs its start and its end)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def mark(self) -> None:
        self._offset = self.path.stat().st_size if self.path.exists() else 0

    def calls(self, *, user: str | None = None) -> list[ApiCall]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            text = handle.read().decode(errors="replace")
        seen: dict[str, ApiCall] = {}
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                event: dict[str, Any] = json.loads(line)
            except ValueError:  # a line cut at the read: counted at the next one
                continue
            if user is not None and event.get("user", {}).get("username") != user:
                continue
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", event.get("requestURI", ""))
            if ref.get("subresource"):
                resource += "/" + ref["subresource"]
            seen.setdefault(event.get("auditID", line), ApiCall(
                verb=event.get("verb", ""), resource=resource, name=ref.get("name", ""),
                user_agent=event.get("userAgent", "")))
        return list(seen.values())


def by_verb(calls: list[ApiCall]) -> dict[str, int]:
    return dict(sorted(Counter(call.verb for call in calls).items()))


def by_verb_and_resource(calls: list[ApiCall]) -> dict[str, int]:
    return dict(sorted(Counter(f"{call.verb} {call.resource}" for call in calls).items()))


# --------------------------------------------------------------------------- Redis
@dataclass
class RedisCommandCounter:
    """Commands the server ran between :meth:`mark` and :meth:`delta` (all clients: attribute
    them by running nothing else meanwhile). Our own INFO calls are reads, never writes."""

    client: Any  # a redis.Redis
    _before: dict[str, int] = field(default_factory=dict)
    _flags: dict[str, frozenset[str]] = field(default_factory=dict)

    def calls(self) -> dict[str, int]:
        stats = self.client.info("commandstats")
        return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}

    def mark(self) -> None:
        self._before = self.calls()

    def delta(self) -> dict[str, int]:
        after = self.calls()
        changed = {name: count - self._before.get(name, 0) for name, count in after.items()}
        return dict(sorted((name, count) for name, count in changed.items() if count > 0))

    def is_write(self, command: str) -> bool:
        if command in SCRIPT_COMMANDS or command in ADMIN_WRITES:
            return True
        if command not in self._flags:
            flags = self._command_flags(command)
            if flags is None and "|" in command:  # an older server: the container's flags
                flags = self._command_flags(command.split("|", 1)[0])
            self._flags[command] = flags or frozenset()
        return "write" in self._flags[command]

    def _command_flags(self, command: str) -> frozenset[str] | None:
        reply = self.client.execute_command("COMMAND", "INFO", command)
        # redis-py parses COMMAND replies into {name: {"flags": [...], ...}}; raw replies are lists.
        if isinstance(reply, dict):
            entry = next(iter(reply.values()), None)
            flags = entry.get("flags") if isinstance(entry, dict) else None
        else:
            first = reply[0] if isinstance(reply, list) and reply else None
            flags = first[2] if isinstance(first, list | tuple) and len(first) > 2 else None
        if flags is None:
            return None
        return frozenset(f.decode() if isinstance(f, bytes) else str(f) for f in flags)

    def writes(self, delta: dict[str, int]) -> dict[str, int]:
        return {name: count for name, count in delta.items() if self.is_write(name)}
