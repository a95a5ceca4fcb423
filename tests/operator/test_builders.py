"""Pure builders: the worker Deployment, Events, conditions and the scaling arithmetic."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import kubernetes_validate
import pytest

from irods_ingest_operator.builders import (
    Health,
    ScaleRecommendation,
    build_condition,
    build_event,
    build_worker_deployment,
    desired_replicas,
    health_conditions,
    merge_conditions,
    progress_text,
    run_outcome_conditions,
    stabilize_replicas,
)
from irods_ingest_operator.constants import FIELD_MANAGER, EventType
from irods_ingest_operator.refs import JobRef, RedisEndpoint, SecretKeyRef
from irods_ingest_operator.spec import SyncJobSpec, parse_spec

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
K8S_SCHEMA_VERSION = "1.25.0"  # the oldest schema kubernetes-validate ships; these kinds match 1.20

JOB_BODY: dict[str, Any] = {
    "apiVersion": "ingest.irods.dev/v1alpha1",
    "kind": "SyncJob",
    "metadata": {
        "name": "archive",
        "namespace": "science",
        "uid": "0b9c3a8e-1111-4222-8333-944455556666",
        "generation": 3,
        # What Argo CD puts on the objects it manages; none of it may reach the children.
        "labels": {"app.kubernetes.io/instance": "argo-app", "team": "data"},
        "annotations": {
            "argocd.argoproj.io/tracking-id": "argo-app:ingest.irods.dev/SyncJob:science/archive",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        },
    },
}
REDIS = RedisEndpoint(url_secret=SecretKeyRef("redis-url", "url"))


def make_spec(**overrides: Any) -> SyncJobSpec:
    raw: dict[str, Any] = {
        "source": {"path": "/data", "volume": {"persistentVolumeClaim": {"claimName": "archive-pvc"}}},
        "destination": {"collection": "/tempZone/home/alice", "connectionSecret": {"name": "irods-conn"}},
    }
    raw.update(overrides)
    return parse_spec(raw)


def deployment(spec: SyncJobSpec | None = None, **kwargs: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "replicas": 2,
        "image_default": "ghcr.io/example/irods-ingest:0.1.0",
        "redis": REDIS,
    }
    options.update(kwargs)
    return build_worker_deployment(JOB_BODY, spec or make_spec(), **options)


def pod_spec(built: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = built["spec"]["template"]["spec"]
    return result


def container(built: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(built)["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env_by_name(built: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container(built)["env"]}


# --- Worker Deployment ------------------------------------------------------------------------
def test_deployment_is_a_valid_apps_v1_deployment() -> None:
    built = deployment(make_spec(workers={"resources": {"requests": {"cpu": "250m"}}}))
    kubernetes_validate.validate(built, K8S_SCHEMA_VERSION, strict=True)
    s3 = make_spec(source={"s3": {"bucket": "raw", "credentialsSecret": {"name": "s3"}}})
    kubernetes_validate.validate(deployment(s3), K8S_SCHEMA_VERSION, strict=True)


def test_deployment_identity_and_owner_reference() -> None:
    built = deployment()

    assert built["metadata"]["name"] == "archive-worker"
    assert built["metadata"]["namespace"] == "science"
    assert built["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "ingest.irods.dev/v1alpha1",
            "kind": "SyncJob",
            "name": "archive",
            "uid": "0b9c3a8e-1111-4222-8333-944455556666",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert built["spec"]["replicas"] == 2


def test_labels_are_ours_and_never_copied_from_the_syncjob() -> None:
    built = deployment()
    expected = {
        "app.kubernetes.io/name": "irods-ingest-worker",
        "app.kubernetes.io/instance": "archive",
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/part-of": "irods-ingest-operator",
        "app.kubernetes.io/managed-by": "irods-ingest-operator",
    }

    assert built["metadata"]["labels"] == expected
    assert built["spec"]["template"]["metadata"]["labels"] == expected
    assert "annotations" not in built["metadata"]
    assert "annotations" not in built["spec"]["template"]["metadata"]
    text = json.dumps(built)
    assert "argo-app" not in text and "argocd" not in text and "team" not in text


def test_selector_is_a_stable_subset_of_the_pod_labels() -> None:
    built = deployment()
    selector = built["spec"]["selector"]["matchLabels"]
    pod_labels = built["spec"]["template"]["metadata"]["labels"]

    assert selector.items() <= pod_labels.items()
    assert selector["app.kubernetes.io/instance"] == "archive"
    # Labels that could change with an operator upgrade stay out of the immutable selector.
    assert "app.kubernetes.io/part-of" not in selector
    assert "app.kubernetes.io/managed-by" not in selector


def test_source_volume_is_mounted_read_only_at_the_path() -> None:
    built = deployment()
    volumes = {volume["name"]: volume for volume in pod_spec(built)["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container(built)["volumeMounts"]}

    assert volumes["source"] == {"name": "source", "persistentVolumeClaim": {"claimName": "archive-pvc"}}
    assert mounts["/data"] == {"name": "source", "mountPath": "/data", "readOnly": True}


@pytest.mark.parametrize(
    "source",
    [{"path": "/data"}, {"s3": {"bucket": "raw"}}],
    ids=["path-without-volume", "s3"],
)
def test_no_source_volume_without_one(source: dict[str, Any]) -> None:
    built = deployment(make_spec(source=source))

    assert "source" not in {volume["name"] for volume in pod_spec(built)["volumes"]}
    assert "source" not in {mount["name"] for mount in container(built)["volumeMounts"]}


def test_irods_connection_secret_is_mounted_and_referenced_never_copied() -> None:
    spec = make_spec(
        destination={
            "collection": "/z/c",
            "connectionSecret": {"name": "irods-conn", "environmentKey": "env.json", "passwordKey": "pw"},
        }
    )
    built = deployment(spec)
    volumes = {volume["name"]: volume for volume in pod_spec(built)["volumes"]}
    mounts = {mount["name"]: mount for mount in container(built)["volumeMounts"]}
    env = env_by_name(built)

    assert volumes["irods-connection"]["secret"]["secretName"] == "irods-conn"
    assert mounts["irods-connection"] == {
        "name": "irods-connection",
        "mountPath": "/etc/irods-ingest/irods",
        "readOnly": True,
    }
    assert env["IRODS_ENVIRONMENT_FILE"] == {
        "name": "IRODS_ENVIRONMENT_FILE",
        "value": "/etc/irods-ingest/irods/env.json",
    }
    assert env["IRODS_PASSWORD"] == {
        "name": "IRODS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "irods-conn", "key": "pw"}},
    }


def test_s3_credentials_come_from_secret_key_refs() -> None:
    spec = make_spec(
        source={"s3": {"bucket": "raw", "credentialsSecret": {"name": "s3-creds", "accessKeyIdKey": "id"}}}
    )
    env = env_by_name(deployment(spec))

    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"] == {"secretKeyRef": {"name": "s3-creds", "key": "id"}}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}
    }
    assert "value" not in env["AWS_ACCESS_KEY_ID"]


def test_no_aws_env_without_s3_credentials() -> None:
    env = env_by_name(deployment(make_spec(source={"s3": {"bucket": "raw"}})))
    assert "AWS_ACCESS_KEY_ID" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env


def test_redis_url_from_a_secret_or_a_plain_value() -> None:
    assert env_by_name(deployment())["IRODS_INGEST_REDIS_URL"] == {
        "name": "IRODS_INGEST_REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "redis-url", "key": "url"}},
    }
    plain = deployment(redis=RedisEndpoint(url="redis://redis.ingest:6379/0"))
    assert env_by_name(plain)["IRODS_INGEST_REDIS_URL"]["value"] == "redis://redis.ingest:6379/0"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "redis://:s3cret@redis:6379/0"},
        {"url": "rediss://user:s3cret@redis:6379/0"},
        {},
        {"url": "redis://redis:6379", "url_secret": SecretKeyRef("r", "url")},
    ],
)
def test_redis_endpoint_refuses_literal_passwords_and_ambiguity(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RedisEndpoint(**kwargs)


def test_container_command_names_the_job_and_concurrency() -> None:
    built = deployment(make_spec(workers={"concurrency": 3}))
    assert container(built)["command"] == [
        "irods-ingest",
        "worker",
        "--job",
        "science/archive",
        "--concurrency",
        "3",
        "--metrics-port",
        "9102",
    ]
    assert container(built)["ports"] == [{"name": "metrics", "containerPort": 9102, "protocol": "TCP"}]


def test_security_context_is_restricted() -> None:
    built = deployment()
    pod = pod_spec(built)
    security = container(built)["securityContext"]

    # The uid/gid are the cluster admin's (operator settings), never the SyncJob's; no fsGroup
    # by default (the kubelet would chown the source volume).
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert (security["runAsUser"], security["runAsGroup"]) == (10001, 10001)
    assert pod["automountServiceAccountToken"] is False
    assert security["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    # With a read-only root, /tmp (also $HOME) must be a writable volume.
    assert {"name": "tmp", "mountPath": "/tmp"} in container(built)["volumeMounts"]
    assert env_by_name(built)["HOME"]["value"] == "/tmp"


def test_image_pull_policy_and_resources_from_the_spec() -> None:
    spec = make_spec(
        workers={
            "image": "registry.example/worker:2",
            "imagePullPolicy": "Always",
            "resources": {"limits": {"memory": "1Gi"}},
        }
    )
    built = deployment(spec)

    assert container(built)["image"] == "registry.example/worker:2"
    assert container(built)["imagePullPolicy"] == "Always"
    # The SyncJob's values laid over the admin's defaults, key by key.
    assert container(built)["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    # The built object is a copy: editing it never changes the parsed spec.
    container(built)["resources"]["limits"]["memory"] = "2Gi"
    assert spec.workers.resources == {"limits": {"memory": "1Gi"}}


def test_defaults_when_the_spec_is_silent() -> None:
    built = deployment()
    assert container(built)["image"] == "ghcr.io/example/irods-ingest:0.1.0"
    assert "imagePullPolicy" not in container(built)
    # Silent spec: the admin's default resources (a pod without limits could starve its node).
    assert container(built)["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}}
    assert "serviceAccountName" not in pod_spec(built)
    assert pod_spec(deployment(service_account_name="worker-sa"))["serviceAccountName"] == "worker-sa"


def test_replicas_come_from_the_caller() -> None:
    assert deployment(replicas=0)["spec"]["replicas"] == 0
    assert deployment(replicas=7)["spec"]["replicas"] == 7
    with pytest.raises(ValueError):
        deployment(replicas=-1)


def test_handler_changes_do_not_change_the_pod_template() -> None:
    # Workers reload the handler by content hash from Redis; a rollout would interrupt tasks.
    without = deployment(make_spec())
    with_handler = deployment(make_spec(handler={"configMapRef": {"name": "h1", "key": "a.py"}}))
    other_handler = deployment(make_spec(handler={"configMapRef": {"name": "h2", "key": "b.py"}}))

    assert without == with_handler == other_handler


def test_schedule_and_run_now_do_not_roll_the_workers() -> None:
    assert deployment(make_spec()) == deployment(make_spec(schedule="@daily", runNow="again", suspend=True))


def test_job_ref_and_body_build_the_same_deployment() -> None:
    ref = JobRef(namespace="science", name="archive", uid="0b9c3a8e-1111-4222-8333-944455556666")
    assert build_worker_deployment(ref, make_spec(), replicas=2, image_default="img", redis=REDIS) == (
        build_worker_deployment(JOB_BODY, make_spec(), replicas=2, image_default="img", redis=REDIS)
    )


def test_builder_does_not_mutate_its_inputs() -> None:
    body = copy.deepcopy(JOB_BODY)
    build_worker_deployment(body, make_spec(), replicas=1, image_default="img", redis=REDIS)
    assert body == JOB_BODY


def test_field_manager_is_fixed() -> None:
    assert FIELD_MANAGER == "irods-ingest-operator"


# --- Events -----------------------------------------------------------------------------------
def test_event_shape() -> None:
    event = build_event(
        JOB_BODY, reason="RunStarted", message="run r1 started", now=NOW, reporting_instance="op-0"
    )

    kubernetes_validate.validate(event, K8S_SCHEMA_VERSION, strict=True)
    assert event["metadata"] == {"generateName": "archive.", "namespace": "science"}
    assert event["involvedObject"] == {
        "apiVersion": "ingest.irods.dev/v1alpha1",
        "kind": "SyncJob",
        "namespace": "science",
        "name": "archive",
        "uid": "0b9c3a8e-1111-4222-8333-944455556666",
    }
    assert (event["type"], event["reason"], event["message"]) == ("Normal", "RunStarted", "run r1 started")
    assert event["source"] == {"component": "irods-ingest-operator"}
    assert (event["reportingComponent"], event["reportingInstance"]) == ("irods-ingest-operator", "op-0")
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2024-05-01T12:00:00Z"
    assert event["eventTime"] == "2024-05-01T12:00:00.000000Z"
    assert event["action"] == "RunStarted"


def test_warning_event_and_long_messages_are_shortened_keeping_both_ends() -> None:
    message = "start-" + "x" * 5000 + "-end"
    event = build_event(
        JOB_BODY, reason="InvalidSpec", message=message, now=NOW, type=EventType.WARNING, action="Validate"
    )

    assert event["type"] == "Warning"
    assert event["action"] == "Validate"
    assert len(event["message"]) == 1024
    assert event["message"].startswith("start-") and event["message"].endswith("-end")
    assert "..." in event["message"]


def test_times_must_be_aware() -> None:
    with pytest.raises(ValueError):
        build_event(JOB_BODY, reason="R", message="m", now=datetime(2024, 1, 1))


def test_event_time_is_converted_to_utc() -> None:
    cest = datetime(2024, 5, 1, 14, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    assert cest.hour == 16
    assert build_event(JOB_BODY, reason="R", message="m", now=cest)["lastTimestamp"] == "2024-05-01T14:00:00Z"


# --- Conditions -------------------------------------------------------------------------------
def test_build_condition() -> None:
    assert build_condition(
        "Ready", True, reason="Reconciled", message="ok", observed_generation=3, now=NOW
    ) == {
        "type": "Ready",
        "status": "True",
        "reason": "Reconciled",
        "message": "ok",
        "observedGeneration": 3,
        "lastTransitionTime": "2024-05-01T12:00:00Z",
    }
    # An empty message is omitted: the test apiserver turns "" in custom resources into a rejected null.
    assert "message" not in build_condition(
        "Stalled", False, reason="R", message="", observed_generation=1, now=NOW
    )


def test_merge_keeps_transition_time_when_status_is_unchanged() -> None:
    first = [
        build_condition("Ready", False, reason="RunInProgress", message="a", observed_generation=1, now=NOW)
    ]
    later = NOW + timedelta(minutes=5)
    update = build_condition(
        "Ready", False, reason="WorkersUnavailable", message="b", observed_generation=2, now=later
    )

    merged = merge_conditions(first, [update])

    assert merged == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "WorkersUnavailable",
            "message": "b",
            "observedGeneration": 2,
            "lastTransitionTime": "2024-05-01T12:00:00Z",
        }
    ]


def test_merge_moves_transition_time_when_status_flips() -> None:
    first = [
        build_condition("Ready", False, reason="RunInProgress", message="a", observed_generation=1, now=NOW)
    ]
    later = NOW + timedelta(minutes=5)

    merged = merge_conditions(
        first,
        [build_condition("Ready", True, reason="RunSucceeded", message="", observed_generation=1, now=later)],
    )

    assert merged[0]["status"] == "True"
    assert merged[0]["lastTransitionTime"] == "2024-05-01T12:05:00Z"
    assert "message" not in merged[0]


def test_merge_keeps_order_and_appends_new_types_without_touching_input() -> None:
    existing = [
        build_condition("Stalled", False, reason="R", message="", observed_generation=1, now=NOW),
        build_condition("Ready", True, reason="R", message="", observed_generation=1, now=NOW),
    ]
    snapshot = copy.deepcopy(existing)

    merged = merge_conditions(
        existing,
        [
            build_condition(
                "Succeeded", True, reason="RunSucceeded", message="", observed_generation=1, now=NOW
            ),
            build_condition(
                "Ready", False, reason="RunInProgress", message="", observed_generation=1, now=NOW
            ),
        ],
    )

    assert [c["type"] for c in merged] == ["Stalled", "Ready", "Succeeded"]
    assert merged[1]["status"] == "False"
    assert existing == snapshot


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        (Health.READY, {"Ready": "True", "Reconciling": "False", "Stalled": "False"}),
        (Health.RECONCILING, {"Ready": "False", "Reconciling": "True", "Stalled": "False"}),
        (Health.STALLED, {"Ready": "False", "Reconciling": "False", "Stalled": "True"}),
    ],
)
def test_health_conditions_are_consistent_for_kstatus(health: Health, expected: dict[str, str]) -> None:
    conditions = health_conditions(
        [], health, reason="Why", message="because", observed_generation=4, now=NOW
    )

    assert {c["type"]: c["status"] for c in conditions} == expected
    assert all(c["observedGeneration"] == 4 and c["reason"] == "Why" for c in conditions)
    # The message sits on the condition that is true, and on Ready (what `kubectl get` users read).
    with_message = {c["type"] for c in conditions if c.get("message") == "because"}
    assert with_message == {"Ready", str(health)}


def test_health_transition_keeps_unchanged_times() -> None:
    reconciling = health_conditions(
        [], Health.RECONCILING, reason="R", message="m", observed_generation=1, now=NOW
    )
    later = NOW + timedelta(hours=1)

    ready = health_conditions(
        reconciling, Health.READY, reason="R", message="m", observed_generation=1, now=later
    )

    times = {c["type"]: c["lastTransitionTime"] for c in ready}
    assert times == {
        "Ready": "2024-05-01T13:00:00Z",
        "Reconciling": "2024-05-01T13:00:00Z",
        "Stalled": "2024-05-01T12:00:00Z",
    }


@pytest.mark.parametrize(("succeeded", "expected"), [(True, ("True", "False")), (False, ("False", "True"))])
def test_run_outcome_conditions(succeeded: bool, expected: tuple[str, str]) -> None:
    conditions = run_outcome_conditions(
        [], succeeded=succeeded, reason="RunSucceeded", message="done", observed_generation=1, now=NOW
    )
    status = {c["type"]: c["status"] for c in conditions}
    assert (status["Succeeded"], status["Failed"]) == expected


# --- Scaling ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("queued", "in_flight", "concurrency", "minimum", "maximum", "suspended", "expected"),
    [
        (0, 0, 1, 0, 4, False, 0),  # idle scales to zero
        (0, 0, 1, 2, 4, False, 2),  # ... unless minReplicas keeps a warm pool
        (1, 0, 1, 0, 4, False, 1),  # a new run's root scan wakes one worker
        (3, 2, 1, 0, 10, False, 5),
        (3, 2, 2, 0, 10, False, 3),  # ceil(5 / 2)
        (1000, 50, 4, 0, 8, False, 8),  # capped by maxReplicas
        (1000, 50, 4, 2, 8, True, 0),  # suspended: zero regardless of minReplicas
        (-5, 0, 1, 0, 4, False, 0),  # nonsense negative counts never scale up
    ],
)
def test_desired_replicas(
    queued: int, in_flight: int, concurrency: int, minimum: int, maximum: int, suspended: bool, expected: int
) -> None:
    assert (
        desired_replicas(
            queued=queued,
            in_flight=in_flight,
            concurrency=concurrency,
            min_replicas=minimum,
            max_replicas=maximum,
            suspended=suspended,
        )
        == expected
    )


def test_desired_replicas_rejects_impossible_bounds() -> None:
    with pytest.raises(ValueError):
        desired_replicas(queued=1, in_flight=0, concurrency=0, min_replicas=0, max_replicas=1)
    with pytest.raises(ValueError):
        desired_replicas(queued=1, in_flight=0, concurrency=1, min_replicas=3, max_replicas=2)


WINDOW = timedelta(seconds=120)


def test_scale_up_is_immediate() -> None:
    decision = stabilize_replicas(desired=6, current=1, history=(), now=NOW, window=WINDOW)
    assert decision.replicas == 6


def test_scale_down_waits_until_the_lower_value_held_for_the_window() -> None:
    history: tuple[ScaleRecommendation, ...] = ()
    replicas = 4
    seen = []
    # desired was 4 at t=0, then 1 from t=10 s on; evaluated every 10 s.
    for second in range(0, 200, 10):
        desired = 4 if second == 0 else 1
        decision = stabilize_replicas(
            desired=desired,
            current=replicas,
            history=history,
            now=NOW + timedelta(seconds=second),
            window=WINDOW,
        )
        history, replicas = decision.history, decision.replicas
        seen.append((second, replicas))

    assert dict(seen)[110] == 4  # the recommendation of 4 made at t=0 is still inside the window
    assert dict(seen)[120] == 1  # ... and expires exactly one window later
    assert all(r == 1 for s, r in seen if s >= 120)


def test_a_brief_dip_does_not_scale_down() -> None:
    history: tuple[ScaleRecommendation, ...] = ()
    replicas = 4
    for second, desired in [(0, 4), (10, 0), (20, 0), (30, 4), (40, 0), (140, 0)]:
        decision = stabilize_replicas(
            desired=desired,
            current=replicas,
            history=history,
            now=NOW + timedelta(seconds=second),
            window=WINDOW,
        )
        history, replicas = decision.history, decision.replicas
        if second < 140:
            assert replicas == 4, second
    assert replicas == 4  # the 4 recommended at t=30 s is still inside the window at t=140 s


def test_without_history_the_current_count_holds_for_a_window() -> None:
    # First call after an operator restart: no evidence yet that fewer workers suffice.
    first = stabilize_replicas(desired=0, current=5, history=(), now=NOW, window=WINDOW)
    assert first.replicas == 5
    held = stabilize_replicas(
        desired=0, current=5, history=first.history, now=NOW + timedelta(seconds=119), window=WINDOW
    )
    assert held.replicas == 5
    released = stabilize_replicas(
        desired=0, current=5, history=held.history, now=NOW + timedelta(seconds=120), window=WINDOW
    )
    assert released.replicas == 0


def test_history_is_pruned_to_the_window() -> None:
    old = tuple(ScaleRecommendation(NOW - timedelta(seconds=s), 3) for s in (500, 300, 121))
    decision = stabilize_replicas(desired=2, current=2, history=old, now=NOW, window=WINDOW)
    assert all(NOW - entry.at < WINDOW for entry in decision.history)
    assert decision.history[-1] == ScaleRecommendation(NOW, 2)


def test_scale_down_never_goes_below_desired_or_above_current() -> None:
    history = (ScaleRecommendation(NOW - timedelta(seconds=30), 9),)
    decision = stabilize_replicas(desired=1, current=3, history=history, now=NOW, window=WINDOW)
    assert decision.replicas == 3


# --- Progress column --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("discovered", "processed", "running", "text"),
    [
        (0, 0, True, "scanning"),
        (0, 0, False, None),
        (200, 50, True, "50/200+ files (25%)"),
        (200, 200, False, "200/200 files (100%)"),
        (3, 1, False, "1/3 files (33%)"),
    ],
)
def test_progress_text(discovered: int, processed: int, running: bool, text: str | None) -> None:
    assert progress_text(discovered=discovered, processed=processed, running=running) == text


def test_status_merge_patch_removes_fields_no_longer_reported() -> None:
    from irods_ingest_operator.builders import merge_patch_for

    old = {"run": {"id": "a", "outcome": "Succeeded", "completionTime": "t"}, "nextSyncTime": "x", "files": {"synced": 3}}
    new = {"run": {"id": "b", "startTime": "s"}, "files": {"synced": 0}}
    assert merge_patch_for(old, new) == {
        "run": {"id": "b", "startTime": "s", "outcome": None, "completionTime": None},
        "files": {"synced": 0},
        "nextSyncTime": None,
    }


def test_status_merge_patch_holds_only_what_changed() -> None:
    """An idle job's status patch is empty: kopf then sends none (issue 18)."""
    from irods_ingest_operator.builders import merge_patch_for

    old = {"run": {"id": "a"}, "conditions": [{"type": "Ready", "status": "True"}], "files": {"synced": 3, "failed": 0}}
    assert merge_patch_for(old, {"run": {"id": "a"}, "conditions": [{"type": "Ready", "status": "True"}],
                                 "files": {"synced": 3, "failed": 0}}) == {}
    assert merge_patch_for(old, {**old, "files": {"synced": 4, "failed": 0}}) == {"files": {"synced": 4}}


def test_s3_transfer_settings_reach_the_workers_as_the_engine_reads_them() -> None:
    from irods_ingest.s3_io import TransferSettings

    spec = make_spec(source={"s3": {"bucket": "raw", "transfer": {
        "parallelThresholdMiB": 64, "partSizeMiB": 16, "partsInFlight": 2, "listPageSize": 100}}})
    env = {name: item["value"] for name, item in env_by_name(deployment(spec)).items() if "value" in item}
    # the engine's own parser of the worker environment sees exactly the spec's values
    assert TransferSettings.from_environment(env) == TransferSettings(
        parallel_threshold=64 * 1024 * 1024, part_bytes=16 * 1024 * 1024, parts_in_flight=2, page_size=100)
    unset = {name: item.get("value", "") for name, item in env_by_name(deployment(make_spec(source={"s3": {"bucket": "raw"}}))).items()}
    assert not any(name.startswith("IRODS_INGEST_S3_") for name in unset)
