"""Fixtures for the chart tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from chart.chartkit import Manifest, render_chart

from testsupport.helm_fixtures import Helm

Render = Callable[..., list[Manifest]]


@pytest.fixture
def render(helm: Helm) -> Render:
    """``render(*helm_args, include_crds=False)`` → the manifests, as dicts."""

    def _render(*args: str, include_crds: bool = False) -> list[Manifest]:
        return render_chart(helm, *args, include_crds=include_crds)

    return _render
