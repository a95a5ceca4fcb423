"""The local control plane behaves like a real cluster where the project relies on it.

Custom resources round-trip (the vendored reflect2 fix), RBAC really refuses, ServiceAccount
tokens authenticate, and the garbage collector deletes dependents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from kubernetes import client as k8s

from irods_ingest_testkit.processes import wait_until
from testsupport.kube import ControlPlane, apply_crd, crd_established
from testsupport.kube_fixtures import UNPRIVILEGED_USER

pytestmark = pytest.mark.kube

GROUP: Final = "smoke.test"
VERSION: Final = "v1"
PLURAL: Final = "widgets"
WIDGET_CRD: Final[dict[str, Any]] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "default": 3},
                                    "colour": {"type": "string", "enum": ["red", "blue"]},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture(scope="module")
def widget_crd(kube_api: k8s.ApiClient) -> Iterator[str]:
    name = apply_crd(kube_api, WIDGET_CRD)
    yield name
    k8s.ApiextensionsV1Api(kube_api).delete_custom_resource_definition(name)


def _status(exc: pytest.ExceptionInfo[k8s.ApiException]) -> int:
    return int(exc.value.status)


def _dict(value: object) -> dict[str, Any]:
    """The custom-objects API returns untyped JSON objects."""
    assert isinstance(value, dict)
    return value


def _message(exc: pytest.ExceptionInfo[k8s.ApiException]) -> str:
    """The message of the Status object the apiserver answered with."""
    return str(json.loads(exc.value.body or "{}").get("message", ""))


def test_apiserver_reports_version_1_20(kube_api: k8s.ApiClient) -> None:
    info = k8s.VersionApi(kube_api).get_code()
    assert (info.major, info.minor) == ("1", "20")
    assert info.git_version == "v1.20.2"


def test_custom_resource_round_trip(kube_api: k8s.ApiClient, widget_crd: str, kube_namespace: str) -> None:
    assert crd_established(kube_api, widget_crd)
    objects = k8s.CustomObjectsApi(kube_api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"colour": "red"},
    }

    created = _dict(objects.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body))
    assert created["spec"] == {"colour": "red", "size": 3}  # the schema default applied

    fetched = _dict(objects.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w1"))
    assert fetched["metadata"]["uid"] == created["metadata"]["uid"]

    objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, kube_namespace, PLURAL, "w1", {"status": {"phase": "Polished"}}
    )
    listing = _dict(objects.list_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL))
    assert [(item["metadata"]["name"], item["status"]) for item in listing["items"]] == [
        ("w1", {"phase": "Polished"})
    ]


def test_schema_validation_rejects_a_bad_enum(
    kube_api: k8s.ApiClient, widget_crd: str, kube_namespace: str
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": "w2"},
        "spec": {"colour": "mauve"},
    }
    with pytest.raises(k8s.ApiException) as refused:
        k8s.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, body
        )
    assert _status(refused) == 422
    assert "spec.colour" in _message(refused)


def test_rbac_refuses_unprivileged_user_until_granted(
    kube_api: k8s.ApiClient, kube_unprivileged_api: k8s.ApiClient, kube_namespace: str
) -> None:
    as_user = k8s.CoreV1Api(kube_unprivileged_api)
    with pytest.raises(k8s.ApiException) as refused:
        as_user.list_namespaced_secret(kube_namespace)
    assert _status(refused) == 403
    assert f'User "{UNPRIVILEGED_USER}"' in _message(refused)

    rbac = k8s.RbacAuthorizationV1Api(kube_api)
    rbac.create_namespaced_role(
        kube_namespace,
        k8s.V1Role(
            metadata=k8s.V1ObjectMeta(name="read-configmaps"),
            rules=[k8s.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        kube_namespace,
        k8s.V1RoleBinding(
            metadata=k8s.V1ObjectMeta(name="read-configmaps"),
            role_ref=k8s.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="read-configmaps"
            ),
            subjects=[
                k8s.RbacV1Subject(kind="User", name=UNPRIVILEGED_USER, api_group="rbac.authorization.k8s.io")
            ],
        ),
    )
    # The grant covers configmaps only. The RBAC authorizer reads bindings from its informer
    # cache, so a new binding takes effect shortly after it is created, not at once.
    def granted() -> bool:
        try:
            return as_user.list_namespaced_config_map(kube_namespace).items is not None
        except k8s.ApiException as exc:
            if exc.status != 403:
                raise
            return False

    wait_until(granted, timeout=30, what="the configmaps grant to take effect")
    with pytest.raises(k8s.ApiException) as still_refused:
        as_user.list_namespaced_secret(kube_namespace)
    assert _status(still_refused) == 403


def test_service_account_tokens_authenticate(
    kube_control_plane: ControlPlane, kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    core = k8s.CoreV1Api(kube_api)
    core.create_namespaced_service_account(
        kube_namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="robot"))
    )
    # A legacy token secret from the controller-manager's tokens controller ...
    wait_until(
        lambda: bool(core.read_namespaced_service_account("robot", kube_namespace).secrets),
        timeout=30,
        what="token secret of ServiceAccount robot",
    )
    # ... and a bound token from the TokenRequest API.
    request = k8s.AuthenticationV1TokenRequest(
        spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    issued = core.create_namespaced_service_account_token("robot", kube_namespace, request)
    assert issued.status is not None

    with (
        kube_control_plane.api_client(token=issued.status.token) as as_robot,
        pytest.raises(k8s.ApiException) as refused,
    ):
        k8s.CoreV1Api(as_robot).list_namespaced_secret(kube_namespace)
    assert _status(refused) == 403
    assert f"system:serviceaccount:{kube_namespace}:robot" in _message(refused)


def test_garbage_collector_deletes_dependents(kube_api: k8s.ApiClient, kube_namespace: str) -> None:
    core = k8s.CoreV1Api(kube_api)
    owner = core.create_namespaced_config_map(
        kube_namespace, k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="owner"))
    )
    assert owner.metadata is not None and owner.metadata.uid is not None
    reference = k8s.V1OwnerReference(api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    core.create_namespaced_config_map(
        kube_namespace,
        k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="dependent", owner_references=[reference])),
    )

    core.delete_namespaced_config_map("owner", kube_namespace)

    def dependent_gone() -> bool:
        names = [
            cm.metadata.name for cm in core.list_namespaced_config_map(kube_namespace).items if cm.metadata
        ]
        return "dependent" not in names

    wait_until(dependent_gone, timeout=60, what="garbage collection of ConfigMap dependent", interval=0.2)


def test_admin_kubeconfig_is_self_contained(kube_control_plane: ControlPlane) -> None:
    """The kubeconfig names the server, the CA file and the admin token; nothing else needed."""
    config = yaml.safe_load(kube_control_plane.kubeconfig_path.read_text())
    assert config["clusters"][0]["cluster"] == {
        "server": kube_control_plane.server_url,
        "certificate-authority": str(kube_control_plane.ca_path),
    }
    assert config["users"][0]["user"] == {"token": kube_control_plane.admin_token}
    assert kube_control_plane.env(base={})["KUBECONFIG"] == str(kube_control_plane.kubeconfig_path)


@pytest.mark.slow
def test_garbage_collector_knows_crds_applied_before_it_started(kube_bin_dir: Path, tmp_path: Path) -> None:
    """Why ``ControlPlane(crds=...)`` exists: objects owned by custom resources get collected.

    The collector learns resource types at start and then only every 30 s; a CRD applied
    before the controller-manager starts is known at once, so collection takes well under 30 s.
    """
    crd_file = tmp_path / "widgets.yaml"
    crd_file.write_text(yaml.safe_dump(WIDGET_CRD))
    with (
        ControlPlane(bin_dir=kube_bin_dir, state_dir=tmp_path / "kube", crds=[crd_file]) as plane,
        plane.api_client() as api,
    ):
        widget = _dict(
            k8s.CustomObjectsApi(api).create_namespaced_custom_object(
                GROUP, VERSION, "default", PLURAL,
                {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": "owner"}},
            )
        )  # fmt: skip
        reference = k8s.V1OwnerReference(
            api_version=f"{GROUP}/{VERSION}", kind="Widget", name="owner", uid=widget["metadata"]["uid"]
        )
        core = k8s.CoreV1Api(api)
        core.create_namespaced_config_map(
            "default", k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="part", owner_references=[reference]))
        )

        k8s.CustomObjectsApi(api).delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "owner")

        def part_gone() -> bool:
            items = core.list_namespaced_config_map("default").items
            return "part" not in [cm.metadata.name for cm in items if cm.metadata]

        wait_until(part_gone, timeout=20, what="garbage collection of a Widget's ConfigMap", interval=0.2)
