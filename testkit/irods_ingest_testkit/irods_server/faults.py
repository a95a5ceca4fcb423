"""API call counters and fault injection.

Counters: every API request a connection sends is counted under its API number
(benchmarks read them to measure round trips per file). Faults, each for one API number
or for any (``api=None``):

* ``fail``: the ``nth`` matching call (counted from when the fault was added) is answered
  with error ``code`` instead of being run, ``times`` times in a row;
* ``drop``: the ``nth`` matching call makes the server close that connection without a reply;
* ``delay``: matching replies are held back ``seconds`` (``times`` calls, or all when 0).

Latency (not a fault): every API reply waits ``latency`` seconds before it is sent, as a real
catalog answers in milliseconds (``--latency-ms``, the control channel's ``/latency``). Each
connection waits on its own, so concurrent connections overlap their waits as they would.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

FaultKind = Literal["fail", "drop", "delay"]


@dataclass
class Fault:
    kind: FaultKind
    api: int | None = None
    nth: int = 1
    code: int = -1
    seconds: float = 0.0
    times: int = 1
    seen: int = 0
    fired: int = 0

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Fault:
        kind = value.get("kind") or value.get("action")
        if kind not in ("fail", "drop", "delay"):
            raise ValueError(f"unknown fault kind {kind!r}")
        api = value.get("api")
        return cls(
            kind=kind,
            api=None if api is None else int(api),
            nth=int(value.get("nth", 1)),
            code=int(value.get("code", -1)),
            seconds=float(value.get("seconds", 0.0)),
            times=int(value.get("times", 0 if kind == "delay" else 1)),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Action:
    """What the server must do with one request."""

    fail_code: int | None = None
    drop: bool = False
    delay: float = 0.0


@dataclass
class Faults:
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counts: Counter[int] = field(default_factory=Counter)
    _faults: list[Fault] = field(default_factory=list)
    connections: int = 0
    latency: float = 0.0  # seconds added to every API reply

    def set_latency(self, seconds: float) -> None:
        if not 0.0 <= seconds <= 60.0:
            raise ValueError(f"latency must be between 0 and 60 s, not {seconds!r}")
        self.latency = float(seconds)

    def connection_opened(self) -> None:
        with self._lock:
            self.connections += 1

    def on_request(self, api: int) -> Action:
        action = Action()
        with self._lock:
            self._counts[api] += 1
            for fault in self._faults:
                if fault.api is not None and fault.api != api:
                    continue
                if fault.times and fault.fired >= fault.times:
                    continue
                fault.seen += 1
                if fault.kind == "delay":
                    fault.fired += 1
                    action.delay += fault.seconds
                elif fault.seen >= fault.nth:
                    fault.fired += 1
                    if fault.kind == "drop":
                        action.drop = True
                    elif action.fail_code is None:
                        action.fail_code = fault.code
        return action

    def counts(self) -> dict[int, int]:
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self.connections = 0

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.times or f.fired < f.times]
