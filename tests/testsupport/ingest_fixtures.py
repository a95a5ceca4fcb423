"""The ``ingest`` fixture: one test's job, source tree and target collection (see testsupport.ingest)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testsupport.ingest import Ingest
from testsupport.irods_fixtures import IrodsEnv

_counter = itertools.count()


@pytest.fixture
def ingest(redis_url: str, irods_env: IrodsEnv, irods_session: Callable[..., Any], tmp_path: Path,
           request: pytest.FixtureRequest) -> Iterator[Ingest]:
    n = next(_counter)
    session = irods_session()
    target = f"{irods_env.home}/t{os.getpid()}_{n}"
    source = tmp_path / "src"
    source.mkdir()
    yield Ingest(redis_url=redis_url, env=irods_env, session=session, source=source, target=target, job=f"job-{n}")
    if session.collections.exists(target):
        session.collections.remove(target, recurse=True, force=True)
