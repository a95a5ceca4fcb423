"""Event-handler source code, stored by content hash.

The controller stores a handler once per content (``iic:{job}:handler:{hash}``, read-only
for workers); a job's config names the hash it runs. Workers load a source by that hash
and compile it once per hash (:class:`irods_ingest.handlers.HandlerCache`).
"""

from __future__ import annotations

import hashlib

from irods_ingest.errors import PermanentError
from irods_ingest.store.connection import RedisClient, reply_text, translated_errors
from irods_ingest.store.keys import JobKeys


def handler_digest(source: bytes) -> str:
    """The content hash a handler is stored under."""
    return hashlib.sha256(source).hexdigest()[:32]


class HandlerSources:
    """One job's stored handler sources."""

    def __init__(self, client: RedisClient, job: str) -> None:
        self.client = client
        self.job = job
        self.keys = JobKeys(job)

    def save(self, source: str) -> str:
        """Store handler source by content hash (idempotent); returns the hash.

        Written only when the key does not hold it already: a controller saves the handler on
        every pass, and an idle job must write nothing. A key whose content was changed behind
        the controller's back is rewritten (what :meth:`load` tells the user to do)."""
        data = source.encode()
        digest = handler_digest(data)
        key = self.keys.handler(digest)
        with translated_errors():
            stored = self.client.get(key)
            if (stored.encode() if isinstance(stored, str) else stored) != data:
                self.client.set(key, data)
        return digest

    def load(self, digest: str) -> str:
        """The source stored under ``digest``; a :class:`PermanentError` if it is missing or
        does not match its hash."""
        with translated_errors():
            raw = self.client.get(self.keys.handler(digest))
        if raw is None:
            raise PermanentError(f"job {self.job}: event handler {digest} is missing from Redis")
        data = raw if isinstance(raw, bytes) else str(raw).encode()
        if handler_digest(data) != digest:
            # Only the controller writes handler keys; content that does not match its name
            # was changed behind its back, and running it would run code nobody reviewed.
            raise PermanentError(
                f"job {self.job}: event handler {digest} in Redis does not match its content hash "
                "(modified outside the operator/CLI); re-apply the job to restore it"
            )
        return reply_text(raw)
