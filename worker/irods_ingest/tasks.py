"""Task payloads: what travels through the queue (never a secret, never a whole config).

A task names its run (the fencing token): a worker drops any task whose run is no longer
current, so a stopped or restarted run can never be changed by late work.
"""

from __future__ import annotations

import base64
import binascii
import enum
import itertools
import json
import os
from dataclasses import dataclass, field, replace
from typing import Any

from irods_ingest.errors import PermanentError


class TaskKind(enum.Enum):
    SCAN = "scan"  # list one source directory: enqueue child scans and file batches
    FILES = "files"  # sync a batch of files of one directory
    DELETE = "delete"  # apply the delete mode to catalog entries that left the source
    FINALIZE = "finalize"  # run post_job once and close the run


_RAW_NAME_MARKER = "\x00b64:"
# How much of a payload that is not a task its failure record keeps (for whoever investigates).
MALFORMED_EXCERPT_CHARS = 200


class MalformedTask(PermanentError):
    """A queue payload that is not a task (not JSON, the wrong shape or types): never executed.

    Carries the payload exactly as claimed (``raw``), so that it can be acknowledged (removed
    from the processing list) and recorded instead of crashing the claim loop.
    """

    def __init__(self, detail: str, raw: bytes, task_id: str = "") -> None:
        super().__init__(f"malformed task payload: {detail}")
        self.raw = raw
        self.task_id = task_id

    @property
    def excerpt(self) -> str:
        text = self.raw.decode("utf-8", "backslashreplace")
        return text if len(text) <= MALFORMED_EXCERPT_CHARS else text[:MALFORMED_EXCERPT_CHARS] + "..."


class _TaskIds:
    """Unique task ids at a fraction of ``uuid4``'s cost (a first-sync scan makes one per 50
    files): 64 random bits per process, renewed in a forked child, then a counter."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count()

    def __call__(self) -> str:
        # next() on a count is one C call, atomic under the GIL: threads never share a serial.
        return f"{self._prefix}{next(self._counter):016x}"


new_task_id = _TaskIds()


def wire_name(name: str) -> str:
    """A name safe for JSON and Redis' cjson: names that are not valid UTF-8 (surrogate-
    escaped by ``os.fsdecode``) travel base64-encoded behind a marker no filename can hold."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return _RAW_NAME_MARKER + base64.b64encode(os.fsencode(name)).decode()
    return name


def from_wire_name(text: str) -> str:
    if text.startswith(_RAW_NAME_MARKER):
        return os.fsdecode(base64.b64decode(text[len(_RAW_NAME_MARKER) :]))
    return text


UNKNOWN = -1  # size/mtime of a file listed without a stat (a first sync): read when it is synced


def wire_names(names: list[str]) -> list[str]:
    """``wire_name`` of each name, with one check for the common batch of UTF-8 names."""
    try:
        "".join(names).encode("utf-8")
    except UnicodeEncodeError:
        return [wire_name(n) for n in names]
    return names


@dataclass(frozen=True)
class FileEntry:
    """One source file as the scan saw it. ``name`` is the raw name, surrogate-escaped.

    A regular file listed without a stat (``size``/``mtime_ns`` are ``UNKNOWN``) travels as
    its bare wire name: first syncs list directories at ``find``'s pace and each file is
    stat'ed once, by the task that syncs it.
    """

    name: str
    size: int
    mtime_ns: int
    kind: str = "regular"  # regular | link | socket | pipe | character | block
    etag: str = ""  # S3 objects: the ETag as listed, without quotes ("" for files)

    @property
    def stated(self) -> bool:
        return self.size != UNKNOWN

    def to_wire(self) -> list[Any] | str:
        if not self.stated and self.kind == "regular" and not self.etag:
            return wire_name(self.name)
        # Numbers travel as strings: Redis' cjson keeps only 14 significant digits.
        wire = [wire_name(self.name), str(self.size), str(self.mtime_ns), self.kind]
        if self.etag:
            wire.append(self.etag)
        return wire

    @classmethod
    def from_wire(cls, data: list[Any] | str) -> FileEntry:
        if isinstance(data, str):
            return cls(name=from_wire_name(data), size=UNKNOWN, mtime_ns=UNKNOWN)
        etag = str(data[4]) if len(data) > 4 else ""
        return cls(name=from_wire_name(data[0]), size=int(data[1]), mtime_ns=int(data[2]), kind=data[3], etag=etag)

    @property
    def cache_field(self) -> str:
        return wire_name(self.name)

    @property
    def cache_value(self) -> str:
        if self.etag:  # an S3 object changes exactly when its ETag or size does
            return f"etag:{self.etag}:{self.size}"
        return f"{self.mtime_ns}:{self.size}"


@dataclass(frozen=True)
class Task:
    kind: TaskKind
    run: str
    directory: str = ""  # source directory relative to the source root ("" = root)
    entries: tuple[FileEntry, ...] = ()
    # FILES tasks built by a first-sync scan: the batch's regular files, listed without a
    # stat, as the JSON array of wire names they travel as (listing.encode_names). They come
    # back from ``decode`` as entries of UNKNOWN size: building a FileEntry per file would
    # cost a first-sync scan more than listing it.
    listed: str = ""
    # SCAN tasks: the other directories of a grouped scan, scanned by the same task after
    # ``directory`` (each with as much of its subtree as the scan budget allows) -- fewer
    # claims and acks per directory. Travels as "also".
    more_directories: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()  # logical paths, for DELETE tasks
    collections: tuple[str, ...] = ()  # logical collections, for DELETE tasks
    attempt: int = 0
    token: str = ""  # S3 SCAN tasks: the ListObjectsV2 continuation token of the page to list
    # DELETE tasks of a vanished collection (see execute.delete.delete_vanished):
    after: str = ""  # the vanished collection whose removal waits for this task (store.keys: joins)
    cursor: str = ""  # the listing page of collections[0] to go on from ("" = its first page)
    remove: bool = False  # remove collections[0], whose contents were deleted, if it is empty
    # Delivered again although its earlier delivery may have done the work: a dead worker's
    # task handed back by the REQUEUE script (which sets "rd"), or deletions retried after a
    # failure. That delivery's counts never landed (only an ack counts, and an acknowledged
    # task is never delivered again), so an object already gone is this delivery's to count.
    redelivered: bool = False
    id: str = field(default_factory=new_task_id)

    def encode(self) -> str:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind.value, "run": self.run, "attempt": self.attempt}
        if self.directory:
            data["dir"] = wire_name(self.directory)
        if self.more_directories:
            data["also"] = [wire_name(d) for d in self.more_directories]
        if self.entries:
            data["entries"] = [e.to_wire() for e in self.entries]
        if self.paths:
            data["paths"] = list(self.paths)
        if self.collections:
            data["colls"] = list(self.collections)
        if self.token:
            data["tok"] = self.token
        if self.after:
            data["af"] = self.after
        if self.cursor:
            data["cur"] = self.cursor
        if self.remove:
            data["rm"] = 1
        if self.redelivered:
            data["rd"] = 1
        # surrogateescape'd names are not valid UTF-8: keep them as \udcxx escapes in JSON.
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
        if self.listed:
            if self.entries:
                raise ValueError("a task carries either entries or a listed batch, not both")
            text = f'{text[:-1]},"entries":{self.listed}}}'
        return text

    @classmethod
    def decode(cls, raw: bytes | str) -> Task:
        """The task a queue payload holds; :class:`MalformedTask` if it holds none.

        Checks the shape and the types only (anyone who can write the queue can write
        anything into it); whether the task may run for its job is ``task_checks``' call.
        """
        data: Any = None
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            return cls(
                id=_text(data, "id"),
                kind=TaskKind(data["kind"]),
                run=_text(data, "run"),
                attempt=int(data.get("attempt", 0)),
                directory=from_wire_name(_text(data, "dir", "")),
                entries=tuple(FileEntry.from_wire(_wire_entry(e)) for e in _array(data, "entries")),
                more_directories=tuple(from_wire_name(_item(d, "also")) for d in _array(data, "also")),
                paths=tuple(_item(p, "paths") for p in _array(data, "paths")),
                collections=tuple(_item(c, "colls") for c in _array(data, "colls")),
                token=_text(data, "tok", ""),
                after=_text(data, "af", ""),
                cursor=_text(data, "cur", ""),
                remove=bool(data.get("rm")),
                redelivered=bool(data.get("rd")),
            )
        except (ValueError, KeyError, TypeError, IndexError, binascii.Error) as exc:
            raw_bytes = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
            task_id = data.get("id") if isinstance(data, dict) else None
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
            raise MalformedTask(detail, raw_bytes, task_id if isinstance(task_id, str) else "") from exc

    def retried(self, entries: tuple[FileEntry, ...] | None = None) -> Task:
        """The same work as a new delivery with one more attempt (optionally fewer entries)."""
        return replace(self, attempt=self.attempt + 1, entries=self.entries if entries is None else entries)

    @property
    def file_count(self) -> int:
        listed = len(json.loads(self.listed)) if self.listed else 0
        return len(self.entries) + listed + len(self.paths)


_MISSING: Any = object()


def _text(data: dict[str, Any], key: str, default: str = _MISSING) -> str:
    value = data[key] if default is _MISSING else data.get(key, default)
    if not isinstance(value, str):
        raise TypeError(f"field {key!r} is {type(value).__name__}, not a string")
    return value


def _array(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise TypeError(f"field {key!r} is {type(value).__name__}, not an array")
    return value


def _item(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"an item of {key!r} is {type(value).__name__}, not a string")
    return value


def _wire_entry(value: Any) -> list[Any] | str:
    """A FILES entry as it travels: a wire name, or [name, size, mtime, kind(, etag)] of strings."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list) or not 4 <= len(value) <= 5 or not all(isinstance(v, str) for v in value):
        raise TypeError(f"file entry {value!r:.80} is neither a name nor [name, size, mtime, kind(, etag)]")
    return value
