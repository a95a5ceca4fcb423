"""The one policy for a missing test service: skip on a developer's machine, fail in CI.

CI sets ``CI=true``; there nothing may be silently skipped, so a missing service is a
failure that names what is missing and how to install it.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_unavailable(service: str, reason: str, fix: str) -> NoReturn:
    message = f"{service} unavailable: {reason}. Fix: {fix}"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
