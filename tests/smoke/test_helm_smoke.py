"""helm works here: the installed binary is Helm 4 and lints and renders the chart.

The chart itself is tested in tests/chart/; this only proves the tool the suite relies on.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testsupport.helm_fixtures import Helm

pytestmark = pytest.mark.helm


def test_helm_is_version_4(helm: Helm) -> None:
    assert helm.run("version", "--short").stdout.startswith("v4.")


def test_helm_lints_and_renders_the_chart(helm: Helm, chart_dir: Path) -> None:
    assert "0 chart(s) failed" in helm.run("lint", "--strict", str(chart_dir)).stdout
    rendered = helm.run("template", "smoke", str(chart_dir), "--namespace", "ingest").stdout
    kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
    assert {"Deployment", "ServiceAccount", "Role", "RoleBinding"} <= kinds
