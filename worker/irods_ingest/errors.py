"""The engine's one error taxonomy.

Adapters translate Redis, iRODS and filesystem errors into these at their edge; the
worker decides from the class alone whether to retry (with capped backoff) or to record
a permanent failure. Nothing upstream catches bare ``Exception`` to retry blindly.
"""

from __future__ import annotations

from dataclasses import dataclass


class IngestError(Exception):
    """Base of every error the engine raises on purpose."""


class RetryableError(IngestError):
    """A transient condition (connection lost, server busy): the same work may succeed later."""


class PermanentError(IngestError):
    """Retrying cannot help (bad input, permission denied, conflicting catalog state)."""


class SourceVanished(PermanentError):
    """The source entry disappeared between the scan and the sync."""


class HandlerError(PermanentError):
    """The user's event handler failed to load or raised in a hook; carries its traceback."""

    def __init__(self, message: str, traceback_text: str = "", *, from_hook: bool = False) -> None:
        super().__init__(message)
        self.traceback_text = traceback_text
        self.from_hook = from_hook  # raised by a pre_/post_ hook (not by loading or a policy method)


class StoreUnavailable(RetryableError):
    """Redis could not be reached after the adapter's own retries."""


@dataclass(frozen=True)
class ConfigProblem:
    """One invalid setting: which field, what is wrong, and how to fix it."""

    field: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.field}: {self.message}"
        return f"{text} ({self.fix})" if self.fix else text


class ConfigError(PermanentError):
    """A job configuration that must not run; lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))
