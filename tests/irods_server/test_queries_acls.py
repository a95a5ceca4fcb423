"""GenQuery semantics, paging and access control through python-irodsclient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from testsupport.irods_fixtures import IrodsEnv

pytestmark = pytest.mark.irods


def test_paging_over_more_than_500_rows(admin: Any, coll: str, irods_session: Callable[..., Any]) -> None:
    from irods.models import Collection

    for i in range(1203):
        admin.collections.create(f"{coll}/c{i:04d}", recurse=False)
    fresh = irods_session()  # one pooled connection: pages stay on the agent that holds the statement
    names = [c.name for c in fresh.collections.get(coll).subcollections]
    assert len(names) == 1203
    assert names == sorted(names)
    batches = list(fresh.query(Collection.name).filter(Collection.parent_name == coll).get_batches())
    assert [len(b) for b in batches] == [500, 500, 203]


def test_default_order_and_like_is_case_sensitive(admin: Any, coll: str) -> None:
    from irods.column import Like
    from irods.models import Collection, DataObject

    for name in ("b.txt", "A.txt", "a.txt"):
        admin.data_objects.create(f"{coll}/{name}")
    assert [o.name for o in admin.collections.get(coll).data_objects] == ["A.txt", "a.txt", "b.txt"]
    rows = admin.query(DataObject.name).filter(Collection.name == coll, Like(DataObject.name, "a%"))
    assert [r[DataObject.name] for r in rows] == ["a.txt"]
    count = admin.query(DataObject.id).filter(Collection.name == coll).count(DataObject.id).one()
    assert int(count[DataObject.id]) == 3


def test_quote_in_name_uses_first_and_last_quote(admin: Any, coll: str) -> None:
    path = f"{coll}/it's here.txt"
    with admin.data_objects.open(path, "w") as f:
        f.write(b"q")
    assert admin.data_objects.get(path).name == "it's here.txt"


def test_control_characters_in_names_with_quasi_xml(admin: Any, coll: str) -> None:
    import irods.message as message

    previous = message.get_default_XML_by_name()
    message.set_default_XML_by_name("QUASI_XML")
    try:
        path = f"{coll}/ctl\x01name\x1f.txt"
        with admin.data_objects.open(path, "w") as f:
            f.write(b"odd")
        assert [o.name for o in admin.collections.get(coll).data_objects] == ["ctl\x01name\x1f.txt"]
        with admin.data_objects.open(path, "r") as f:
            assert f.read() == b"odd"
    finally:
        message.set_default_XML_by_name(previous)


def test_non_admin_sees_only_what_it_may_read(
    admin: Any, coll: str, users: dict[str, str], irods_session: Callable[..., Any], irods_env: IrodsEnv
) -> None:
    from irods.access import iRODSAccess
    from irods.column import Like
    from irods.exception import CAT_NO_ACCESS_PERMISSION, CollectionDoesNotExist
    from irods.models import DataObject

    alice_name = next(iter(users))
    admin.data_objects.create(f"{coll}/secret.txt")
    shared = admin.data_objects.create(f"{coll}/shared.txt")
    alice = irods_session(user=alice_name, password=users[alice_name])
    with pytest.raises(CollectionDoesNotExist):
        alice.collections.get(coll)
    admin.acls.set(iRODSAccess("read", coll, alice_name, irods_env.zone))
    admin.acls.set(iRODSAccess("read", shared.path, alice_name, irods_env.zone))
    assert [o.name for o in alice.collections.get(coll).data_objects] == ["shared.txt"]
    names = [r[DataObject.name] for r in alice.query(DataObject.name).filter(Like(DataObject.name, "s%"))]
    assert "secret.txt" not in names and "shared.txt" in names
    with alice.data_objects.open(shared.path, "r") as f:
        assert f.read() == b""
    with pytest.raises(CAT_NO_ACCESS_PERMISSION):
        alice.data_objects.open(f"{coll}/secret.txt", "r")
    with pytest.raises(CAT_NO_ACCESS_PERMISSION):
        alice.collections.create(f"{coll}/not_mine")
    acls = {(a.user_name, a.access_name) for a in admin.acls.get(admin.data_objects.get(shared.path))}
    assert acls == {(admin.username, "own"), (alice_name, "read_object")}


def test_as_user_proxy(admin: Any, users: dict[str, str], irods_session: Callable[..., Any],
                       irods_env: IrodsEnv) -> None:
    from irods.exception import SYS_PROXYUSER_NO_PRIV

    alice_name, bob_name = users
    proxied = irods_session(client_user=alice_name, client_zone=irods_env.zone)
    path = f"/{irods_env.zone}/home/{alice_name}/by_proxy"
    created = proxied.collections.create(path)
    assert created.owner_name == alice_name
    proxied.collections.remove(path, force=True)
    bad = irods_session(user=alice_name, password=users[alice_name], client_user=bob_name,
                        client_zone=irods_env.zone)
    with pytest.raises(SYS_PROXYUSER_NO_PRIV):
        bad.collections.get(f"/{irods_env.zone}/home/{bob_name}")
