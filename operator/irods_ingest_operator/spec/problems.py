"""What is wrong with a spec: each problem with its field and a fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SpecProblem:
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message} ({self.fix})"


class InvalidSpecError(ValueError):
    """The spec cannot run; ``problems`` lists every reason, in spec order."""

    def __init__(self, problems: Sequence[SpecProblem]) -> None:
        self.problems: tuple[SpecProblem, ...] = tuple(problems)
        super().__init__(summarize_problems(self.problems))


def summarize_problems(problems: Sequence[SpecProblem], *, limit: int = 3) -> str:
    """A one-line summary for a condition message: the first few problems, then a count."""
    shown = "; ".join(str(p) for p in problems[:limit])
    rest = len(problems) - limit
    return f"{shown}; and {rest} more" if rest > 0 else shown
