"""A generic typed reader of untrusted mappings that collects problems instead of raising.

Each accessor returns the value, or a stand-in (a default, None, empty) after recording a
problem with the field's path and a fix, so a caller reads on and reports everything that
is wrong at once. Nothing here knows the SyncJob's fields: :mod:`.sections` does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from irods_ingest_operator.spec.problems import SpecProblem
from irods_ingest_operator.spec.rules import valid_object_key, valid_object_name

_E = TypeVar("_E", bound=StrEnum)


def kind_of(value: object) -> str:
    """What a YAML value is, in the user's words ("a string", "a list")."""
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "an object" if isinstance(value, Mapping) else type(value).__name__
    )


class TypedReader:
    """Reads values, recording problems and carrying on with a stand-in value after each."""

    def __init__(self) -> None:
        self.problems: list[SpecProblem] = []

    def problem(self, field_path: str, message: str, fix: str) -> None:
        self.problems.append(SpecProblem(field_path, message, fix))

    def add(self, problems: list[SpecProblem]) -> None:
        self.problems.extend(problems)

    def obj(self, raw: object, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.problem(path, f"must be an object, not {kind_of(raw)}", f"write {path} as a mapping of fields")
            return {}
        for key in raw:
            if key not in allowed:
                self.problem(
                    f"{path}.{key}",
                    "is not a known field",
                    f"remove it or use one of: {', '.join(sorted(allowed))}",
                )
        return raw

    def string(self, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None:
            if required:
                self.problem(where, "is required", f"set {where}")
            return None
        if not isinstance(value, str):
            self.problem(where, f"must be a string, not {kind_of(value)}", f"quote the value of {where}")
            return None
        if required and not value:
            self.problem(where, "must not be empty", f"set {where}")
            return None
        return value

    def name(self, obj: Mapping[str, Any], key: str, path: str, *, what: str) -> str | None:
        value = self.string(obj, key, path, required=True)
        if value is not None and not valid_object_name(value):
            self.problem(
                f"{path}.{key}",
                f"'{value}' is not a valid {what} name",
                "use lower-case letters, digits, '-' and '.', at most 253 characters",
            )
            return None
        return value

    def object_key(self, obj: Mapping[str, Any], key: str, path: str, default: str) -> str:
        value = self.string(obj, key, path)
        if value is None:
            return default
        if not valid_object_key(value):
            self.problem(
                f"{path}.{key}", f"'{value}' is not a valid key", "use letters, digits, '-', '_' and '.'"
            )
            return default
        return value

    def boolean(self, obj: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(
                f"{path}.{key}", f"must be true or false, not {kind_of(value)}", "write true or false unquoted"
            )
            return default
        return value

    def integer(
        self, obj: Mapping[str, Any], key: str, path: str, default: int, *, minimum: int, maximum: int
    ) -> int:
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(where, f"must be an integer, not {kind_of(value)}", f"write {where} as a whole number")
            return default
        if not minimum <= value <= maximum:
            self.problem(
                where, f"is {value}; it must be between {minimum} and {maximum}", f"set {where} in range"
            )
            return default
        return value

    def enum(self, obj: Mapping[str, Any], key: str, path: str, kind: type[_E], default: _E) -> _E:
        value = obj.get(key)
        if value is None:
            return default
        try:
            return kind(value)
        except ValueError:
            self.problem(f"{path}.{key}", f"{value!r} is not allowed", f"use one of: {', '.join(kind)}")
            return default

    def strings(self, obj: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            self.problem(
                where, "must be a list of strings", f"write {where} as a YAML list of quoted strings"
            )
            return ()
        return tuple(value)

    def regexes(self, obj: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
        patterns = self.strings(obj, key, path)
        for index, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as error:
                self.problem(
                    f"{path}.{key}[{index}]",
                    f"{pattern!r} is not a valid regular expression: {error}",
                    "fix the expression (Python re syntax)",
                )
        return patterns
