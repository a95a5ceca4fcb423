"""Fixtures shared by the iRODS test-server tests (they also run against a real iRODS)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testsupport.irods_fixtures import IrodsEnv

ALICE = "alice"
ALICE_PASSWORD = "apass"
BOB = "bob"
BOB_PASSWORD = "bpass"
HIERARCHY = ("rootResc", "midResc", ("leaf1Resc", "leaf2Resc"))


@pytest.fixture
def admin(irods_session: Callable[..., Any]) -> Any:
    return irods_session()


@pytest.fixture
def coll(admin: Any, irods_env: IrodsEnv, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh collection for the test under the admin's home, force-removed afterwards."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:80]
    path = f"{irods_env.home}/{name}"
    if admin.collections.exists(path):
        admin.collections.remove(path, recurse=True, force=True)
    admin.collections.create(path)
    yield path
    if admin.collections.exists(path):
        admin.collections.remove(path, recurse=True, force=True)


def ensure_user(admin: Any, name: str, password: str) -> None:
    from irods.exception import UserDoesNotExist

    try:
        admin.users.get(name)
    except UserDoesNotExist:
        admin.users.create(name, "rodsuser")
    # Always (re)set: other suites sharing the server may have made the user without one.
    admin.users.modify(name, "password", password)


@pytest.fixture
def users(admin: Any) -> dict[str, str]:
    """Two ordinary users, ``alice`` and ``bob``: name -> password."""
    ensure_user(admin, ALICE, ALICE_PASSWORD)
    ensure_user(admin, BOB, BOB_PASSWORD)
    return {ALICE: ALICE_PASSWORD, BOB: BOB_PASSWORD}


@pytest.fixture
def hierarchy(admin: Any) -> tuple[str, str, tuple[str, str]]:
    """rootResc (passthru) -> midResc (random) -> leaf1Resc, leaf2Resc; created on a real iRODS if missing."""
    from irods.exception import ResourceDoesNotExist

    root, mid, leaves = HIERARCHY
    try:
        admin.resources.get(root)
    except ResourceDoesNotExist:
        admin.resources.create(root, "passthru")
        admin.resources.create(mid, "random")
        admin.resources.add_child(root, mid)
        for leaf in leaves:
            admin.resources.create(leaf, "unixfilesystem", admin.host, f"/tmp/{leaf}")
            admin.resources.add_child(mid, leaf)
    return HIERARCHY
