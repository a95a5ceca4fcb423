"""Native authentication: the 4.3+ JSON flow and the legacy challenge/response flow.

Both compute ``md5(challenge + password padded with NULs to 50 bytes)`` and replace NUL
bytes of the digest with 0x01 (``plugins/authentication/src/native.cpp``,
``native_auth_agent_response``; ``lib/core/src/clientLogin.cpp``). The password checked is
the *proxy* user's; a proxy that differs from the client user must be a rodsadmin, or the
server answers SYS_PROXYUSER_NO_PRIV.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import string
import struct
from dataclasses import dataclass
from typing import Any, Final

from irods_ingest_testkit.irods_server.catalog import Catalog, User
from irods_ingest_testkit.irods_server.errors import (
    CAT_INVALID_AUTHENTICATION,
    CAT_INVALID_USER,
    SYS_INVALID_INPUT_PARAM,
    SYS_PROXYUSER_NO_PRIV,
    IrodsError,
)

MAX_PASSWORD_LEN: Final = 50
CHALLENGE_LEN: Final = 64
_CHALLENGE_ALPHABET: Final = string.ascii_letters + string.digits


def new_challenge() -> bytes:
    # Printable bytes: the legacy client strips whitespace from the challenge before hashing.
    return "".join(secrets.choice(_CHALLENGE_ALPHABET) for _ in range(CHALLENGE_LEN)).encode()


def expected_digest(challenge: bytes, password: str) -> bytes:
    padded = struct.pack(f"{MAX_PASSWORD_LEN}s", password.encode())
    return hashlib.md5(challenge + padded).digest().replace(b"\0", b"\1")


@dataclass
class Identity:
    """Who is on a connection once authenticated: the proxy logs in, the client acts."""

    proxy: User
    client: User


class Authenticator:
    """Per-connection authentication state (the challenge sent last)."""

    def __init__(self, catalog: Catalog, proxy_user: str, proxy_zone: str, client_user: str, client_zone: str):
        self.catalog = catalog
        self.proxy_name, self.proxy_zone = proxy_user, proxy_zone
        self.client_name, self.client_zone = client_user, client_zone
        self.challenge: bytes | None = None

    def _verify(self, digest: bytes) -> Identity:
        if self.challenge is None:
            raise IrodsError(CAT_INVALID_AUTHENTICATION, "no challenge was issued")
        proxy = self.catalog.user(self.proxy_name, self.proxy_zone or None)
        if proxy is None:
            raise IrodsError(CAT_INVALID_USER, f"no such user {self.proxy_name}")
        password = self.catalog.password_of(proxy.id)
        if password is None or not secrets.compare_digest(expected_digest(self.challenge, password), digest):
            raise IrodsError(CAT_INVALID_AUTHENTICATION, "authentication failed")
        if (self.client_name, self.client_zone) != (self.proxy_name, self.proxy_zone) and not proxy.is_admin:
            raise IrodsError(SYS_PROXYUSER_NO_PRIV, f"{proxy.name} may not act as {self.client_name}")
        client = self.catalog.user(self.client_name, self.client_zone or None)
        if client is None:
            raise IrodsError(CAT_INVALID_USER, f"no such user {self.client_name}")
        return Identity(proxy, client)

    # --- 4.3+ flow: AUTHENTICATION_APN (110000) carrying JSON

    def json_step(self, request: dict[str, Any]) -> tuple[dict[str, Any], Identity | None]:
        if request.get("scheme", "native") != "native":
            raise IrodsError(SYS_INVALID_INPUT_PARAM, f"auth scheme {request.get('scheme')!r} is not supported")
        operation = request.get("next_operation")
        reply = dict(request)
        if operation == "auth_agent_auth_request":
            self.challenge = new_challenge()
            reply["request_result"] = self.challenge.decode()
            reply["next_operation"] = "auth_agent_auth_response"
            return reply, None
        if operation == "auth_agent_auth_response":
            try:
                digest = base64.b64decode(str(request.get("digest", "")))
            except (binascii.Error, ValueError) as exc:
                raise IrodsError(CAT_INVALID_AUTHENTICATION, "digest is not base64") from exc
            identity = self._verify(digest)
            reply["next_operation"] = "auth_success"
            return reply, identity
        raise IrodsError(SYS_INVALID_INPUT_PARAM, f"unknown next_operation {operation!r}")

    # --- legacy flow: AUTH_REQUEST_AN (703) then AUTH_RESPONSE_AN (704)

    def legacy_challenge(self) -> bytes:
        self.challenge = new_challenge()
        return self.challenge

    def legacy_response(self, digest: bytes) -> Identity:
        return self._verify(digest)
