"""Verifying streamed bytes against an S3 ETag and an iRODS checksum (pure, no I/O).

A single-part ETag is the MD5 of the object. A multipart ETag (``<hex>-<N>``) is the MD5
of the concatenated part MD5s, so it can only be checked if the part size is known: S3
does not record it, so the usual part sizes of common uploaders are tried (each one that
splits the object into exactly N parts is hashed alongside). When none fits, the file
FAILS with "cannot verify multipart ETag" rather than pass unverified: with
verifyChecksum set, an unverifiable copy is not a verified one.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

MIB: Final = 1024 * 1024
MIN_PART_BYTES: Final = 5 * MIB  # S3's smallest part (all but the last)
# boto3/aws-cli (8 MiB), MinIO/mc and rclone (5 and 16 MiB), s3cmd (15 MiB), others.
COMMON_PART_SIZES: Final = (8 * MIB, 5 * MIB, 16 * MIB, 15 * MIB, 10 * MIB, 32 * MIB, 64 * MIB, 100 * MIB, 128 * MIB)
_MULTIPART: Final = re.compile(r"^([0-9a-f]{32})-(\d+)$")
_SINGLE: Final = re.compile(r"^[0-9a-f]{32}$")


def part_size_candidates(size: int, parts: int) -> list[int]:
    """Part sizes that split ``size`` bytes into exactly ``parts`` parts."""
    found = [p for p in COMMON_PART_SIZES if -(-size // p) == parts]
    if parts > 1:  # an uploader that split evenly, in whole MiB
        even = -(-size // parts)
        for guess in (even, -(-even // MIB) * MIB):
            if guess >= MIN_PART_BYTES and -(-size // guess) == parts and guess not in found:
                found.append(guess)
    return found


@dataclass
class _PartHasher:
    part_size: int
    current: hashlib._Hash = field(default_factory=hashlib.md5)
    filled: int = 0
    digests: list[bytes] = field(default_factory=list)

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self.part_size - self.filled)
            self.current.update(view[:take])
            self.filled += take
            view = view[take:]
            if self.filled == self.part_size:
                self._close_part()

    def _close_part(self) -> None:
        self.digests.append(self.current.digest())
        self.current = hashlib.md5()
        self.filled = 0

    def etag(self) -> str:
        if self.filled:
            self._close_part()
        return f"{hashlib.md5(b''.join(self.digests)).hexdigest()}-{len(self.digests)}"


class StreamVerifier:
    """Hashes bytes as they stream past; then judges them against an ETag and an iRODS checksum."""

    def __init__(self, etag: str, size: int) -> None:
        self.etag = etag.strip('"').lower()
        self.size = size
        self.md5 = hashlib.md5()
        self.sha256 = hashlib.sha256()
        self.length = 0
        multipart = _MULTIPART.match(self.etag)
        self.parts = int(multipart.group(2)) if multipart else 0
        self._part_hashers = [_PartHasher(p) for p in part_size_candidates(size, self.parts)] if multipart else []

    def update(self, data: bytes) -> None:
        self.md5.update(data)
        self.sha256.update(data)
        self.length += len(data)
        for hasher in self._part_hashers:
            hasher.update(data)

    def etag_problem(self) -> str | None:
        """Why the bytes seen do not match the ETag (None if they do)."""
        if self.length != self.size:
            return f"read {self.length} bytes but the listing said {self.size}: the object changed during the transfer"
        if _SINGLE.match(self.etag):
            actual = self.md5.hexdigest()
            if actual != self.etag:
                return (f"checksum mismatch: MD5 of the bytes read is {actual} but the object's ETag is {self.etag} "
                        "(the object changed during the transfer, or the data was corrupted)")
            return None
        if self.parts:
            if not self._part_hashers:
                return (f"cannot verify multipart ETag {self.etag}: no known part size splits {self.size} bytes "
                        f"into {self.parts} parts")
            composites = {h.etag() for h in self._part_hashers}
            if self.etag not in composites:
                return (f"checksum mismatch: no composite MD5 of the bytes read matches the multipart ETag {self.etag} "
                        "(the object changed during the transfer, the data was corrupted, or an unusual part size was used)")
            return None
        return f"cannot verify ETag {self.etag!r}: it is neither an MD5 nor a multipart ETag (SSE-KMS or SSE-C object?)"

    def irods_problem(self, irods_checksum: str) -> str | None:
        """Why iRODS' checksum of what it stored differs from the bytes sent (None if it matches)."""
        if irods_checksum.startswith("sha2:"):
            expected = "sha2:" + base64.b64encode(self.sha256.digest()).decode()
        elif re.fullmatch(r"[0-9a-f]{32}", irods_checksum):
            expected = self.md5.hexdigest()
        else:
            return None  # a scheme we do not compute: the ETag check above still applies
        if irods_checksum != expected:
            return f"checksum mismatch: iRODS stored {irods_checksum} but the bytes sent hash to {expected}"
        return None
