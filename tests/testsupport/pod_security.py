"""The Kubernetes Pod Security Standards, "baseline" and "restricted" profiles, as checks on a pod spec.

The test control plane (v1.20) predates the PodSecurity admission controller (1.23), so the
suite checks the pods the operator builds against the standard itself:
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (the controls of the
"latest" version; each line below names its control). Pure: a pod spec in, violations out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

BASELINE_CAPABILITIES: Final = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP",
    "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})  # fmt: skip
SAFE_SYSCTLS: Final = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})  # fmt: skip
RESTRICTED_VOLUME_TYPES: Final = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
})  # fmt: skip


def _containers(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod.get(kind) or []


def baseline_violations(pod: Mapping[str, Any], annotations: Mapping[str, str] | None = None) -> list[str]:
    found: list[str] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            found.append(f"Host Namespaces: {flag} is true")
    if (pod.get("securityContext") or {}).get("windowsOptions", {}).get("hostProcess"):
        found.append("HostProcess: the pod is a Windows host process")
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            found.append(f"HostPath Volumes: volume {volume.get('name')!r} is a hostPath")
    pod_security = pod.get("securityContext") or {}
    found += _selinux_and_seccomp(pod_security, "pod")
    for sysctl in pod_security.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"Sysctls: {sysctl.get('name')!r} is not a safe sysctl")
    for container in _containers(pod):
        found += _container_baseline(container)
    for key, value in (annotations or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and value != "runtime/default" and not value.startswith("localhost/"):
            found.append(f"AppArmor: {key} is {value!r}")
    return found


def _container_baseline(container: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    name = container.get("name")
    security = container.get("securityContext") or {}
    if security.get("privileged"):
        found.append(f"Privileged Containers: {name!r} is privileged")
    added = set((security.get("capabilities") or {}).get("add") or [])
    if added - BASELINE_CAPABILITIES:
        found.append(f"Capabilities: {name!r} adds {sorted(added - BASELINE_CAPABILITIES)}")
    for port in container.get("ports") or []:
        if port.get("hostPort"):
            found.append(f"Host Ports: {name!r} uses hostPort {port['hostPort']}")
    if security.get("procMount", "Default") != "Default":
        found.append(f"/proc Mount Type: {name!r} uses {security['procMount']}")
    return found + _selinux_and_seccomp(security, f"container {name!r}")


def _selinux_and_seccomp(security: Mapping[str, Any], where: str) -> list[str]:
    found = []
    selinux = security.get("seLinuxOptions") or {}
    if selinux.get("type") not in (None, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"):
        found.append(f"SELinux: {where} sets type {selinux['type']!r}")
    if selinux.get("user") or selinux.get("role"):
        found.append(f"SELinux: {where} sets a user or role")
    if (security.get("seccompProfile") or {}).get("type") == "Unconfined":
        found.append(f"Seccomp: {where} is Unconfined")
    return found


def restricted_violations(pod: Mapping[str, Any], annotations: Mapping[str, str] | None = None) -> list[str]:
    """Every control of the "restricted" profile (which includes "baseline") that ``pod`` breaks."""
    found = baseline_violations(pod, annotations)
    for volume in pod.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if kinds - RESTRICTED_VOLUME_TYPES:
            found.append(f"Volume Types: volume {volume.get('name')!r} is {sorted(kinds)}")
    pod_security = pod.get("securityContext") or {}
    pod_seccomp = (pod_security.get("seccompProfile") or {}).get("type")
    for container in _containers(pod):
        name = container.get("name")
        security = container.get("securityContext") or {}
        if security.get("allowPrivilegeEscalation") is not False:
            found.append(f"Privilege Escalation: {name!r} does not set allowPrivilegeEscalation=false")
        non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
        if non_root is not True:
            found.append(f"Running as Non-root: {name!r} does not run with runAsNonRoot=true")
        if security.get("runAsUser", pod_security.get("runAsUser")) == 0:
            found.append(f"Running as Non-root user: {name!r} runs as uid 0")
        seccomp = (security.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"Seccomp: {name!r} has no RuntimeDefault or Localhost seccomp profile")
        capabilities = security.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"Capabilities: {name!r} does not drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"Capabilities: {name!r} adds more than NET_BIND_SERVICE")
    if pod_security.get("runAsUser") == 0:
        found.append("Running as Non-root user: the pod runs as uid 0")
    return found
