"""The operator's CACHE_RETENTION setting (issue 19, finding 6): how long a deleted SyncJob's change
cache waits for a SyncJob of the same namespace and settings."""

from __future__ import annotations

from datetime import timedelta

import pytest

from irods_ingest.actions import DEFAULT_CACHE_RETENTION_SECONDS
from irods_ingest.errors import ConfigError
from irods_ingest_operator.settings import OperatorSettings


def test_seven_days_by_default_zero_for_none_and_nonsense_refused() -> None:
    assert OperatorSettings.from_environment({}).cache_retention == timedelta(days=7)
    assert DEFAULT_CACHE_RETENTION_SECONDS == 7 * 24 * 3600
    settings = OperatorSettings.from_environment({"IRODS_INGEST_OPERATOR_CACHE_RETENTION": "0"})
    assert settings.cache_retention == timedelta(0)
    with pytest.raises(ConfigError, match="CACHE_RETENTION"):
        OperatorSettings.from_environment({"IRODS_INGEST_OPERATOR_CACHE_RETENTION": "-1"})
