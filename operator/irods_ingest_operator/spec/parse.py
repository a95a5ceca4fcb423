"""The entry points: a SyncJob (or its spec) in, the typed spec or every problem out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from irods_ingest_operator.spec.model import SyncJobSpec
from irods_ingest_operator.spec.problems import InvalidSpecError, SpecProblem
from irods_ingest_operator.spec.rules import check_job_name
from irods_ingest_operator.spec.sections import SpecReader


def parse_spec(raw: Mapping[str, Any]) -> SyncJobSpec:
    """Parse ``spec`` of a SyncJob; raise InvalidSpecError listing every problem."""
    reader = SpecReader()
    spec = reader.spec(raw)
    if reader.problems or spec is None:
        raise InvalidSpecError(reader.problems)
    return spec


def parse_syncjob(body: Mapping[str, Any]) -> SyncJobSpec:
    """Parse a whole SyncJob object: its name's limits plus its spec, problems collected together."""
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    problems = check_job_name(name) if isinstance(name, str) else []
    reader = SpecReader()
    spec = reader.spec(body.get("spec"))
    problems += reader.problems
    if problems or spec is None:
        raise InvalidSpecError(problems)
    return spec


def spec_problems(raw: Mapping[str, Any]) -> list[SpecProblem]:
    reader = SpecReader()
    reader.spec(raw)
    return list(reader.problems)
