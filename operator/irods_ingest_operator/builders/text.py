"""Times and texts as the API server stores them: RFC 3339 times, bounded strings."""

from __future__ import annotations

from datetime import UTC, datetime


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with seconds, as metav1.Time serialises."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    """A time as the API server (RFC 3339) or the operator's notes (ISO 8601) write it; None if unset."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_micro_time(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("pass an aware datetime (UTC); naive times are ambiguous")
    return moment.astimezone(UTC)


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, keeping both ends (where the path and the error are)."""
    if len(text) <= limit:
        return text
    infix = "..."
    head = (limit - len(infix)) // 2
    tail = limit - len(infix) - head
    return f"{text[:head]}{infix}{text[-tail:]}"
