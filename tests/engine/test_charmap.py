"""Character mapping gives the same logical names as the incumbent (vectors computed with 0.7.0)."""

from __future__ import annotations

import re

import pytest

from irods_ingest.charmap import translate_path

NON_ALNUM = {re.compile("[^a-zA-Z0-9]"): "_"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/tempZone/home/rods/a b.txt", "/tempZone/home/rods/a_b_txt_qich1"),
        ("/tempZone/home/rods/dir one/file#1", "/tempZone/home/rods/dir_one_Uc/file_1_5h"),
        ("/tempZone/x/" + "é" * 30, "/tempZone/x/" + "_" * 30 + "_l4j98v9ca1AL0OMINbQzH3ffpFEcvCtMjuzPT6"),
        ("/tempZone/home/rods/plain", "/tempZone/home/rods/plain"),
    ],
)
def test_same_names_as_the_incumbent(path: str, expected: str) -> None:
    assert translate_path(path, NON_ALNUM) == expected


def test_distinct_sources_stay_distinct() -> None:
    assert translate_path("/z/a b", NON_ALNUM) != translate_path("/z/a_b", NON_ALNUM)
