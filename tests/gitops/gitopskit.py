"""How GitOps tools judge a SyncJob, for the tests: kstatus (Flux, kpt, cli-utils) and the Argo CD
health script. Imported as ``gitops.gitopskit``.

``kstatus`` transcribes sigs.k8s.io/cli-utils ``pkg/kstatus/status`` (generic.go, core.go) for a
custom resource: deletion → Terminating; ``observedGeneration`` behind ``generation`` →
InProgress; ``Reconciling=True`` → InProgress; ``Stalled=True`` → Failed; otherwise Current.
Flux additionally waits for ``Ready=True`` on custom resources that have it (``ready_required``).

``argocd_health`` runs deploy/argocd/health.lua in a real Lua interpreter (Debian's lua5.4; Argo CD
embeds gopher-lua, a Lua 5.1, so the script avoids 5.2+ features) with ``obj`` set as Argo CD sets it.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from testsupport.require import service_unavailable

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
HEALTH_LUA: Final = REPO_ROOT / "deploy" / "argocd" / "health.lua"
LUA: Final = "lua5.4"


@dataclass(frozen=True)
class Verdict:
    status: str
    message: str


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def kstatus(obj: Mapping[str, Any], *, ready_required: bool = False) -> Verdict:
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return Verdict("Terminating", "Resource scheduled for deletion")
    generation = metadata.get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if generation is not None and observed is not None and observed != generation:
        return Verdict("InProgress", f"{obj.get('kind')} generation is {generation}, "
                                     f"but latest observed generation is {observed}")
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Reconciling" and condition.get("status") == "True":
            return Verdict("InProgress", str(condition.get("message", "")))
        if condition.get("type") == "Stalled" and condition.get("status") == "True":
            return Verdict("Failed", str(condition.get("message", "")))
    if ready_required:
        ready = _condition(obj, "Ready")
        if ready is None or ready.get("status") != "True":
            return Verdict("InProgress", "waiting for Ready")
    return Verdict("Current", "Resource is current")


def lua_literal(value: Any) -> str:
    """A Lua expression for a JSON-like value (tables for objects and arrays, as Argo CD builds them)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} has no JSON form")
        return repr(value)
    if isinstance(value, str):
        return '"' + "".join(_lua_char(byte) for byte in value.encode()) + '"'
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua_literal(item) for item in value) + "}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"[{lua_literal(str(k))}] = {lua_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def _lua_char(byte: int) -> str:
    if byte in (0x22, 0x5C):  # " and \
        return "\\" + chr(byte)
    if 0x20 <= byte < 0x7F:
        return chr(byte)
    return f"\\{byte:03d}"  # decimal escapes: the same in Lua 5.1 and 5.4


def lua_binary() -> str:
    binary = shutil.which(LUA)
    if binary is None:
        service_unavailable("Lua interpreter", f"{LUA} not found", "apt-get install lua5.4 (scripts/dev installs it)")
    return binary


def argocd_health(obj: Mapping[str, Any], script: Path = HEALTH_LUA) -> Verdict:
    """Run the health script as Argo CD does: global ``obj``, the script's return value is the verdict."""
    harness = (
        f"obj = {lua_literal(dict(obj))}\n"
        f"local hs = dofile({lua_literal(str(script))})\n"
        'io.write(tostring(hs.status), "\\n", tostring(hs.message))\n'
    )
    result = subprocess.run([lua_binary(), "-"], input=harness, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise AssertionError(f"health.lua failed: {result.stderr}")
    status, _, message = result.stdout.partition("\n")
    return Verdict(status, message)
