"""iRODS connection settings and sessions, from the places the incumbent and PRC use.

Precedence: the ``IRODS_HOST``/``IRODS_PORT``/``IRODS_USER_NAME``/``IRODS_ZONE_NAME``/
``IRODS_PASSWORD`` variables when all are set; otherwise ``IRODS_ENVIRONMENT_FILE`` or
``~/.irods/irods_environment.json`` (with ``IRODS_PASSWORD`` or the ``.irodsA`` file).
Passwords are held only in memory and never logged or written to Redis.
"""

from __future__ import annotations

import json
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import irods.message
from irods.exception import CAT_INVALID_AUTHENTICATION, NetworkException
from irods.session import NonAnonymousLoginWithoutPassword, iRODSSession

from irods_ingest.errors import PermanentError, RetryableError

ENV_VARS = ("IRODS_HOST", "IRODS_PORT", "IRODS_USER_NAME", "IRODS_ZONE_NAME", "IRODS_PASSWORD")


@dataclass(frozen=True)
class IrodsSettings:
    host: str = ""
    port: int = 1247
    user: str = ""
    zone: str = ""
    password: str = field(default="", repr=False)
    env_file: str | None = None

    @property
    def describe(self) -> str:
        return f"{self.user}#{self.zone}@{self.host}:{self.port}" if self.host else f"env file {self.env_file}"

    @classmethod
    def from_environment(cls, environ: dict[str, str] | None = None) -> IrodsSettings:
        env = dict(os.environ if environ is None else environ)
        if all(env.get(name) for name in ENV_VARS):
            try:
                port = int(env["IRODS_PORT"])
            except ValueError as exc:
                raise PermanentError(f"IRODS_PORT={env['IRODS_PORT']!r} is not a port number") from exc
            return cls(
                host=env["IRODS_HOST"],
                port=port,
                user=env["IRODS_USER_NAME"],
                zone=env["IRODS_ZONE_NAME"],
                password=env["IRODS_PASSWORD"],
            )
        env_file = env.get("IRODS_ENVIRONMENT_FILE") or str(Path("~/.irods/irods_environment.json").expanduser())
        if not Path(env_file).is_file():
            missing = [name for name in ENV_VARS if not env.get(name)]
            raise PermanentError(
                f"no iRODS connection settings: {env_file} does not exist and {', '.join(missing)} "
                "are not set (set IRODS_ENVIRONMENT_FILE or the IRODS_* variables)"
            )
        return cls(env_file=env_file, password=env.get("IRODS_PASSWORD", ""))


def use_tolerant_xml() -> None:
    """Parse replies with PRC's QUASI_XML parser (unless the user chose one).

    File names may hold control characters; iRODS sends them raw in its XML, which the
    standard parser rejects — and a whole directory listing with it.
    """
    if not os.environ.get("PYTHON_IRODSCLIENT_DEFAULT_XML"):
        irods.message.set_default_XML_by_name("QUASI_XML")


def open_session(settings: IrodsSettings, *, client_user: tuple[str, str] | None = None) -> Any:
    """A PRC session (lazy: PRC connects on first use). ``client_user`` is (zone, user) for ``as_user``."""
    use_tolerant_xml()
    kwargs: dict[str, Any] = {}
    if settings.env_file:
        try:
            with open(settings.env_file) as handle:
                env_json = json.load(handle)
        except (OSError, json.JSONDecodeError) as exc:
            raise PermanentError(f"cannot read iRODS environment file {settings.env_file}: {exc}") from exc
        if settings.password:
            # PRC reads a password only from .irodsA when given an environment file, so pass the
            # file's settings as keywords with the password (from the pod's Secret) beside them.
            kwargs.update(env_json)
            kwargs["password"] = settings.password
        else:
            kwargs["irods_env_file"] = settings.env_file
        ca_file = env_json.get("irods_ssl_ca_certificate_file")
        if env_json.get("irods_ssl_verify_server") not in (None, "none") and ca_file:
            kwargs["ssl_context"] = ssl.create_default_context(purpose=ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    else:
        kwargs.update(host=settings.host, port=settings.port, user=settings.user, zone=settings.zone, password=settings.password)
    if client_user is not None:
        kwargs["client_zone"], kwargs["client_user"] = client_user
    try:
        return iRODSSession(**kwargs)
    except NetworkException as exc:
        raise RetryableError(f"cannot reach iRODS ({settings.describe}): {exc}") from exc
    except CAT_INVALID_AUTHENTICATION as exc:
        raise PermanentError(f"iRODS refused the password for {settings.describe}") from exc
    except NonAnonymousLoginWithoutPassword as exc:
        raise PermanentError(
            f"no iRODS password for {settings.describe}: {exc} (set IRODS_PASSWORD or create the .irodsA file)"
        ) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentError(f"invalid iRODS connection settings ({settings.describe}): {exc}") from exc
