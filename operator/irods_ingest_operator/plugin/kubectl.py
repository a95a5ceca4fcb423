"""The plugin's one adapter to the API server: the user's own ``kubectl``.

Each call runs ``kubectl`` with the connection flags the user gave the plugin (``--kubeconfig``,
``--context``, ``--namespace``, ``--request-timeout``), or none, so that kubectl resolves them
exactly as for any other command (current context, the context's namespace, ``$KUBECONFIG``).
``$KUBECTL`` names another binary. kubectl's refusals (Forbidden, NotFound, an unreachable
server) come back as :class:`KubectlError` with kubectl's own words.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

KUBECTL_ENV: Final = "KUBECTL"
CALL_TIMEOUT_SECONDS: Final = 120.0


class KubectlError(Exception):
    """kubectl failed; the message is what the user should read."""


@dataclass(frozen=True)
class Kubectl:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    request_timeout: str | None = None
    binary: str = ""

    def flags(self) -> list[str]:
        given = (("--kubeconfig", self.kubeconfig), ("--context", self.context), ("--namespace", self.namespace),
                 ("--request-timeout", self.request_timeout))
        return [f"{flag}={value}" for flag, value in given if value]

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        """The object as JSON, or None when it does not exist."""
        out = self._run(["get", resource, name, "--ignore-not-found", "--output=json"])
        return _object(out) if out.strip() else None

    def patch_merge(self, resource: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a JSON merge patch; the patched object."""
        out = self._run(["patch", resource, name, "--type=merge", f"--patch={json.dumps(patch)}", "--output=json"])
        return _object(out)

    def _run(self, args: Sequence[str]) -> str:
        command = [self.binary or os.environ.get(KUBECTL_ENV) or "kubectl", *self.flags(), *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                  timeout=CALL_TIMEOUT_SECONDS, check=False)
        except FileNotFoundError as exc:
            raise KubectlError(f"{command[0]} not found: install kubectl, or name it in ${KUBECTL_ENV}") from exc
        except subprocess.TimeoutExpired as exc:
            raise KubectlError(f"kubectl did not answer within {CALL_TIMEOUT_SECONDS:.0f} s: {' '.join(args[:3])}") from exc
        if done.returncode != 0:
            raise KubectlError(done.stderr.strip() or f"kubectl {' '.join(args[:3])} failed (exit {done.returncode})")
        return done.stdout


def _object(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise KubectlError(f"kubectl printed something that is not JSON: {text[:200]!r}") from exc
    if not isinstance(parsed, dict):
        raise KubectlError("kubectl printed JSON that is not an object")
    return parsed
