"""deploy/argocd/health.lua judges SyncJobs as documented, run by a real Lua interpreter on the
fixtures in tests/gitops/health/ (Argo CD's health_test.yaml layout), and agrees with kstatus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from gitops.gitopskit import HEALTH_LUA, Verdict, argocd_health, kstatus, lua_literal

FIXTURES: Final = Path(__file__).parent / "health"
CASES: Final = yaml.safe_load((FIXTURES / "health_test.yaml").read_text())["tests"]
ARGO_STATUSES: Final = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
# What kstatus (Flux) says for the same objects (a failed run is Stalled: Failed for both).
KSTATUS_FOR: Final = {"Healthy": "Current", "Progressing": "InProgress", "Degraded": "Failed", "Suspended": "Current"}


def _load(case: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / case["inputPath"]).read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_of_fixture(case: dict[str, Any]) -> None:
    expected = Verdict(case["healthStatus"]["status"], case["healthStatus"]["message"])
    assert argocd_health(_load(case)) == expected


def test_fixtures_cover_every_health_status() -> None:
    statuses = {case["healthStatus"]["status"] for case in CASES}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}
    assert statuses <= ARGO_STATUSES
    assert sorted(p.name for p in (FIXTURES / "testdata").glob("*.yaml")) == sorted(
        Path(c["inputPath"]).name for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_agrees_with_kstatus(case: dict[str, Any]) -> None:
    obj = _load(case)
    health = case["healthStatus"]["status"]
    flux = kstatus(obj, ready_required=True).status
    if Path(case["inputPath"]).stem == "run-failed-older-status":
        assert flux == "Current"  # Ready=True beside Failed=True, as operators before issue 19 wrote it
    else:
        assert flux == KSTATUS_FOR[health]


def test_a_failed_run_is_never_ready() -> None:
    """A wrong iRODS password fails the run: Ready False (kstatus: Failed), Argo CD Degraded."""
    obj = _load({"inputPath": "testdata/run-failed.yaml"})
    assert kstatus(obj, ready_required=True).status == "Failed"
    assert next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")["status"] == "False"


def test_lua_literals_survive_awkward_strings() -> None:
    obj = {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [
        {"type": "Stalled", "status": "True", "reason": "InvalidSpec",
         "message": 'spec.filter.excludeNames[0]: "\\d+[" is not a regex — fix ✓\nnext line'}]}}
    verdict = argocd_health(obj)
    assert verdict.status == "Degraded"
    assert verdict.message.startswith('spec.filter.excludeNames[0]: "\\d+[" is not a regex — fix ✓')
    assert lua_literal([1, 2.5, True, None]) == "{1, 2.5, true, nil}"


def test_script_avoids_lua_5_2_features() -> None:
    """Argo CD runs gopher-lua (Lua 5.1): no goto, integer division, bitwise operators or utf8 library."""
    source = "\n".join(line.split("--", 1)[0] for line in HEALTH_LUA.read_text().splitlines())
    for construct in ("goto ", "//", "::", "utf8.", "table.move", "<<", ">>", " & ", " | ", "~ "):
        assert construct not in source, construct
