"""Keeping a worker's secrets out of what it writes to Redis.

A worker holds secrets (the iRODS password, ``AWS_SECRET_ACCESS_KEY``, the password in its
Redis URL) and writes text it does not control into Redis: a handler's exception message
and traceback, an iRODS or S3 error. Anyone who can read the job's failure records (or its
run error) would read a secret quoted there, e.g. by a handler that raises with
``os.environ``. :class:`Redactor` replaces every occurrence of the worker's secret values
with ``***``; the worker builds one at start and its task queues apply it to every failure
record and run error they write (:mod:`irods_ingest.jobstate.failure_log`).

Pure: no I/O, no imports of the adapters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote, unquote_plus, urlsplit

MASK = "***"
# Shorter values would mask ordinary words: a secret that short is no secret.
MIN_SECRET_CHARS = 4
# A secret at least this long is masked wherever it occurs, even inside a longer word.
ANYWHERE_CHARS = 12
# The environment variables whose values are secrets wherever a worker runs.
SECRET_VARIABLES = ("IRODS_PASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class Redactor:
    """Replaces each given secret (and its escaped spellings) with :data:`MASK`.

    ``public`` are names that appear in ordinary text (the iRODS user and zone, the Redis
    user): a "secret" equal to one of them cannot be kept out of paths and messages by
    masking it, and masking it would garble every path, so it is left alone.
    """

    def __init__(self, secrets: Iterable[str], public: Iterable[str] = ()) -> None:
        known = set(public)
        spellings: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET_CHARS or secret in known:
                continue
            # As it appears in a str()/repr() of a dict, in JSON, and percent-encoded in a URL.
            spellings.update({secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], quote(secret, safe=""),
                              quote(secret, safe=":/@")})
        # Longest first: a secret that contains another is masked whole. A short secret is
        # masked only where it stands on its own (not inside a longer word or name: the
        # suite's password "rods" must not turn /var/irods/x into /var/i***/x); a long one
        # anywhere (it occurs in nothing by chance).
        ordered = sorted((s for s in spellings if len(s) >= MIN_SECRET_CHARS), key=len, reverse=True)
        alternatives = [re.escape(s) if len(s) >= ANYWHERE_CHARS else rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])"
                        for s in ordered]
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    @property
    def active(self) -> bool:
        return self._pattern is not None


def url_password(url: str) -> str:
    """The password in a ``redis://user:password@host`` URL ("" if none), decoded."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return ""
    return unquote(password) if password else ""


def url_user(url: str) -> str:
    """The user name in a Redis URL ("" if none)."""
    try:
        return unquote(urlsplit(url).username or "")
    except ValueError:
        return ""


def worker_secrets(environ: Mapping[str, str], *, redis_url: str = "", irods_password: str = "") -> list[str]:
    """The secret values a worker knows: its secret environment variables, the passwords of
    its Redis URL (also a Sentinel URL's ``sentinel_password``) and the iRODS password it logs in with."""
    found = [environ.get(name, "") for name in SECRET_VARIABLES]
    password = url_password(redis_url)
    found += [password, irods_password]
    if password:
        found.append(urlsplit(redis_url).password or "")  # as spelled in the URL (percent-encoded)
    query = redis_url.partition("?")[2].partition("#")[0]
    for item in query.split("&") if query else ():
        key, _, spelled = item.partition("=")
        if unquote(key) in ("password", "sentinel_password"):
            found += [unquote_plus(spelled), spelled]  # decoded as a client reads it, and as spelled
    return [value for value in found if value]
