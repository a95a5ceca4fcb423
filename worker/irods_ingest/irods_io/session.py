"""iRODS connection settings and sessions, from the places the incumbent and PRC use.

Precedence: the ``IRODS_HOST``/``IRODS_PORT``/``IRODS_USER_NAME``/``IRODS_ZONE_NAME``/
``IRODS_PASSWORD`` variables when all are set; otherwise ``IRODS_ENVIRONMENT_FILE`` or
``~/.irods/irods_environment.json`` (with ``IRODS_PASSWORD`` or the ``.irodsA`` file).
Passwords are held only in memory and never logged or written to Redis.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import xml.etree.ElementTree as _ET_STANDARD
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import irods.message
import irods.message.quasixml as _ET_QUASI
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


# Bytes the standard (expat) parser would reject or silently change in element text: C0
# control characters other than TAB and LF (CR is normalised to LF, a NUL or \x01 is a
# parse error), and markup declarations (``<!``: DOCTYPE/ENTITY/CDATA), which iRODS never
# sends and which must never reach an entity-expanding parser.
_NEEDS_QUASI = re.compile(rb"[\x00-\x08\x0b-\x1f]|<!")


class _FastTolerantXml:
    """PRC's XML "module" for replies: expat (C) when it parses the reply exactly as the
    QUASI_XML parser would, QUASI_XML otherwise.

    QUASI_XML is pure Python and quadratic in the reply length (it re-slices the remaining
    bytes per token): it was 21 % of a worker's busy time on new files. A reply is handed
    to expat only when it holds no byte on which the two could differ, and only while the
    thread's server uses standard entities (PRC decodes ``&apos;`` as a backquote for
    servers before 4.2.9).
    """

    @staticmethod
    def fromstring(data: bytes | str) -> Any:
        raw = data.encode("utf-8") if isinstance(data, str) else data
        if not _NEEDS_QUASI.search(raw) and _standard_entities():
            return _ET_STANDARD.fromstring(raw)
        return _ET_QUASI.fromstring(raw)


def _standard_entities() -> bool:
    return any(char == "'" for char, _entity in irods.message.XML_entities_active())


def use_tolerant_xml() -> None:
    """Parse replies tolerantly (unless the user chose a parser with PYTHON_IRODSCLIENT_DEFAULT_XML).

    File names may hold control characters; iRODS sends them raw in its XML, which the
    standard parser rejects — and a whole directory listing with it. So QUASI_XML is the
    default parser, and its entry in PRC's parser table is a front that uses expat for
    every reply that has no such byte (:class:`_FastTolerantXml`).
    """
    if not os.environ.get("PYTHON_IRODSCLIENT_DEFAULT_XML"):
        irods.message._XML_parsers[irods.message.XML_Parser_Type.QUASI_XML] = _FastTolerantXml
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
