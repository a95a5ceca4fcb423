"""Task payloads: what a grouped scan carries, under its name in code and on the wire."""

from __future__ import annotations

from irods_ingest.tasks import Task, TaskKind


def test_the_other_directories_of_a_grouped_scan_travel_as_also() -> None:
    group = Task(TaskKind.SCAN, "r", directory="x", more_directories=("y", "z"))
    assert '"also":["y","z"]' in group.encode()
    assert Task.decode(group.encode()) == group
    # a payload queued by a running deployment of the previous version decodes the same
    old = '{"id":"t1","kind":"scan","run":"r","attempt":0,"dir":"x","also":["y","z"]}'
    assert Task.decode(old).more_directories == ("y", "z")
