"""The kube adapter's read of worker pods (finding 4 of issue 19): what it takes from a pod's
status, and the last log line of a crash loop from its previous instance (pods/log).

The API objects are the client's own models, as the API server returns them; the end-to-end
test (test_worker_trouble_e2e.py) reads real Pod objects, but a control plane without a
kubelet has no logs to serve.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from irods_ingest_operator.kube import KubeAdapter
from irods_ingest_operator.refs import ContainerFacts, PodFacts


class StubCore:
    def __init__(self, pods: list[k8s.V1Pod], log: str | None) -> None:
        self.pods = pods
        self.log = log
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> k8s.V1PodList:
        self.calls.append(("list", {"namespace": namespace, **kwargs}))
        return k8s.V1PodList(items=self.pods)

    def read_namespaced_pod_log(self, name: str, namespace: str, **kwargs: Any) -> str:
        self.calls.append(("log", {"name": name, **kwargs}))
        if self.log is None:
            raise ApiException(status=400, reason="Bad Request")
        return self.log


def adapter(core: StubCore) -> KubeAdapter:
    kube = KubeAdapter.__new__(KubeAdapter)
    kube.core = core  # type: ignore[assignment]
    return kube


def crash_looping(name: str = "w-1") -> k8s.V1Pod:
    status = k8s.V1ContainerStatus(
        name="worker", ready=False, restart_count=5, image="w:1", image_id="",
        state=k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason="CrashLoopBackOff", message="back-off")),
        last_state=k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(
            exit_code=2, reason="Error", message="the termination message")))
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=name), status=k8s.V1PodStatus(
        phase="Running", conditions=[k8s.V1PodCondition(type="PodScheduled", status="True")],
        container_statuses=[status]))


def test_a_crash_loop_brings_the_last_line_its_previous_instance_logged() -> None:
    core = StubCore([crash_looping(), crash_looping("w-2")], "starting\nirods-ingest: cannot reach Redis\n\n")
    [first, second] = adapter(core).worker_pods("lab", {"app.kubernetes.io/instance": "ingest"})
    assert first == PodFacts("w-1", phase="Running", scheduled=True, containers=(ContainerFacts(
        "worker", waiting_reason="CrashLoopBackOff", waiting_message="back-off", last_exit_code=2, last_reason="Error",
        last_message="the termination message", restarts=5, last_log_line="irods-ingest: cannot reach Redis"),))
    assert second.containers[0].last_log_line == ""  # one log read per pass at most
    [(_, listed), (_, log)] = core.calls
    assert listed["label_selector"] == "app.kubernetes.io/instance=ingest"
    assert log["previous"] is True and log["container"] == "worker" and log["tail_lines"] > 0


def test_a_log_that_cannot_be_read_leaves_the_status_to_speak() -> None:
    [pod] = adapter(StubCore([crash_looping()], None)).worker_pods("lab", {"a": "b"})
    assert pod.containers[0].last_log_line == "" and pod.containers[0].last_message == "the termination message"


def test_an_unschedulable_pod() -> None:
    pod = k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="w-1"), status=k8s.V1PodStatus(phase="Pending", conditions=[
        k8s.V1PodCondition(type="PodScheduled", status="False", reason="Unschedulable", message="0/3 nodes are available")]))
    assert adapter(StubCore([pod], "")).worker_pods("lab", {"a": "b"}) == (
        PodFacts("w-1", phase="Pending", scheduled=False, unschedulable="0/3 nodes are available"),)
