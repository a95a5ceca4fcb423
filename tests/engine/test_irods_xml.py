"""Replies from iRODS are parsed with expat when that is exact, with QUASI_XML otherwise.

The fast path must never change a name: a control character that expat rejects (\\x01) or
rewrites (CR becomes LF) sends the reply to PRC's tolerant parser.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import irods.message.quasixml as quasi
import pytest

from irods_ingest.config import Operation
from irods_ingest.irods_io.session import _FastTolerantXml
from testsupport.ingest import Ingest


def _reply(name: str) -> bytes:
    escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;").replace('"', "&quot;")
    return (f"<GenQueryOut_PI>\n<rowCnt>1</rowCnt>\n<SqlResult_PI>\n<attriInx>403</attriInx>\n<reslen>256</reslen>\n"
            f"<value>{escaped}</value>\n</SqlResult_PI>\n</GenQueryOut_PI>\n").encode()


@pytest.mark.parametrize("name", ["plain.txt", "sp ace & <x> 'q' \"d\".txt", "tab\there", "ünïcødé €", "cr\rin", "ctl\x01x",
                                  "nul-free\x1fend"])
def test_every_name_parses_exactly_as_quasi_xml_does(name: str) -> None:
    fast = _FastTolerantXml.fromstring(_reply(name))
    tolerant = quasi.fromstring(_reply(name))
    value = fast.find("SqlResult_PI").find("value").text
    assert value == tolerant.find("SqlResult_PI").find("value").text == name


def test_plain_replies_take_the_standard_parser_and_others_do_not() -> None:
    assert isinstance(_FastTolerantXml.fromstring(_reply("plain.txt")), ET.Element)
    assert isinstance(_FastTolerantXml.fromstring(_reply("cr\rin")), quasi.Element)
    assert isinstance(_FastTolerantXml.fromstring(_reply("ctl\x01x")), quasi.Element)
    # A markup declaration never reaches expat (no entity expansion from a reply).
    try:
        parsed = _FastTolerantXml.fromstring(b"<!DOCTYPE x [<!ENTITY e 'boom'>]><a>&e;</a>")
    except Exception:  # QUASI_XML may reject it outright: also fine
        parsed = None
    assert not isinstance(parsed, ET.Element)


@pytest.mark.irods
@pytest.mark.redis
def test_names_with_control_characters_sync_and_rescan_unchanged(ingest: Ingest) -> None:
    names = ["cr\rname.txt", "ctl\x01name.txt", "tab\tname.txt", "amp & 'quote'.txt", "plain.txt"]
    for name in names:
        ingest.write(name, b"x")
    first = ingest.run(operation=Operation.REGISTER_SYNC)
    assert first.state == "done", ingest.failures()
    assert first.counters["files_synced"] == len(names)
    assert set(ingest.objects()) == set(names)
    # The rescan's listing (one GenQuery reply holding every name) must parse each name exactly,
    # or a file would look new (and fail as already existing) or be matched to the wrong object.
    second = ingest.run(operation=Operation.REGISTER_SYNC, ignore_cache=True)
    assert second.state == "done", ingest.failures()
    assert second.counters["files_failed"] == 0
    assert second.counters["files_synced"] + second.counters["files_unchanged"] == len(names)
    assert set(ingest.objects()) == set(names)
