"""Issue 19, finding 6, on the real API server: a SyncJob deleted and created again under another
name (a GitOps rename) with the same spec finds its change cache — zero re-uploads.

Tried before: create, let it succeed, delete, create the same spec as another name. Got: all
15 files uploaded again (status.files.synced == 15). The operator's deletion (JobActions.delete)
now keeps the cache for a retention, and the new job's first run adopts it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from irods_ingest.store.connection import connect
from irods_ingest_operator.constants import GROUP, PLURAL, VERSION
from testsupport.irods_fixtures import IrodsEnv
from testsupport.kubelet import LocalKubelet
from testsupport.operator_fixtures import Cluster, OperatorProcess, job_spec, make_tree, wait_for

pytestmark = [pytest.mark.kube, pytest.mark.redis, pytest.mark.irods, pytest.mark.slow]

FILES = 15
TIMEOUT = 120.0


def _succeeded(cluster: Cluster, name: str) -> bool:
    status = cluster.get(name).get("status") or {}
    return (status.get("run") or {}).get("outcome") == "Succeeded"


def _catalog_state(session: Any, collection: str) -> dict[str, tuple[object, ...]]:
    return {
        obj.path: (obj.size, tuple((r.number, r.modify_time) for r in obj.replicas))
        for _c, _s, objects in session.collections.get(collection).walk()
        for obj in objects
    }


def _gone(cluster: Cluster, name: str) -> bool:
    items = cluster.objects.list_namespaced_custom_object(GROUP, VERSION, cluster.namespace, PLURAL)["items"]
    return not any(i["metadata"]["name"] == name for i in items)


def test_a_recreated_syncjob_with_the_same_spec_uploads_nothing_again(
    cluster: Cluster, operator_process: OperatorProcess, kubelet: LocalKubelet,
    irods_session: Callable[..., Any], irods_env: IrodsEnv, redis_url: str, host_dir: Path,
) -> None:
    source = host_dir / "source"
    make_tree(source, FILES)
    collection = f"{irods_env.home}/adopt_{cluster.namespace}"
    spec = job_spec(source, collection)
    session = irods_session()
    try:
        cluster.create_syncjob("ingest", spec)
        wait_for("the first job's run to succeed", lambda: _succeeded(cluster, "ingest"), timeout=TIMEOUT)
        assert cluster.get("ingest")["status"]["files"]["synced"] == FILES
        before = _catalog_state(session, collection)
        assert len(before) == FILES

        cluster.delete("ingest")
        wait_for("the first SyncJob gone", lambda: _gone(cluster, "ingest"), timeout=TIMEOUT)
        client = connect(redis_url)
        assert not list(client.scan_iter(match=f"ii:{{{cluster.namespace}/ingest}}:*"))  # its own keys are gone
        assert list(client.scan_iter(match=f"iic:{{retained~{cluster.namespace}~*}}:meta"))  # its cache is kept

        # The same spec under another name (a GitOps rename): nothing uploaded again.
        cluster.create_syncjob("ingest-renamed", spec)
        wait_for("the renamed job's run to succeed", lambda: _succeeded(cluster, "ingest-renamed"), timeout=TIMEOUT)
        status = cluster.get("ingest-renamed")["status"]
        assert (status["files"]["synced"], status["files"]["unchanged"], status["files"]["failed"]) == (0, FILES, 0), status
        assert status["bytes"]["synced"] == 0
        assert _catalog_state(session, collection) == before  # no replica rewritten
        assert not list(client.scan_iter(match=f"iic:{{retained~{cluster.namespace}~*}}:*"))  # taken, not shared
        assert "CacheAdopted" in cluster.events("ingest-renamed")  # and the user is told

        # Apply-then-prune (how GitOps tools rename): the new object exists before the old one
        # is deleted. It borrows the live job's cache: still nothing uploaded.
        cluster.create_syncjob("ingest-again", spec)
        wait_for("the third job's run to succeed", lambda: _succeeded(cluster, "ingest-again"), timeout=TIMEOUT)
        status = cluster.get("ingest-again")["status"]
        assert (status["files"]["synced"], status["files"]["unchanged"]) == (0, FILES), status
        cluster.delete("ingest-renamed")
        wait_for("the renamed SyncJob gone", lambda: _gone(cluster, "ingest-renamed"), timeout=TIMEOUT)
        assert _catalog_state(session, collection) == before
        assert operator_process.poll() is None, "the operator died"
    finally:
        if session.collections.exists(collection):
            session.collections.remove(collection, recurse=True, force=True)
