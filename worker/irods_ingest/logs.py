"""Structured logging: one event name per line plus key/value context, JSON by default."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

_PLAIN = (str, int, float, bool, type(None))
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def context_fields(record: logging.LogRecord, object_field: str = "object") -> dict[str, Any]:
    """The context passed with ``extra=...``: plain values, and an object reference (a mapping
    with a namespace and a name, as kopf attaches to its lines) as ``namespace/name`` under
    ``object_field``. Libraries attach whole objects there too; those are left out."""
    fields: dict[str, Any] = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        if isinstance(value, _PLAIN):
            fields[key] = value
        elif isinstance(value, Mapping) and value.get("name") and object_field not in vars(record):
            namespace = value.get("namespace")
            fields.setdefault(object_field, f"{namespace}/{value['name']}" if namespace else str(value["name"]))
    return fields


class JsonFormatter(logging.Formatter):
    def __init__(self, object_field: str = "object") -> None:
        super().__init__()
        self.object_field = object_field

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        data.update(context_fields(record, self.object_field))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``LEVEL logger event key=value ...``: the same context as the JSON lines, for people."""

    def __init__(self, object_field: str = "object") -> None:
        super().__init__()
        self.object_field = object_field

    def format(self, record: logging.LogRecord) -> str:
        parts = [record.levelname, record.name, record.getMessage()]
        for key, value in context_fields(record, self.object_field).items():
            parts.append(f"{key}={_text_value(value)}")
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def _text_value(value: Any) -> str:
    text = str(value)
    if text and not any(c.isspace() or c in "\"=" for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)  # quoted, one line


def configure(level: str = "INFO", *, json_format: bool = True, stream: Any = None, object_field: str = "object") -> None:
    """Log to ``stream`` (stderr), one line per event; ``object_field`` names the field that an
    object reference is shown under (the operator's are SyncJobs: ``job``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(object_field) if json_format else TextFormatter(object_field))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level.upper())
    except ValueError as exc:
        raise SystemExit(f"invalid log level {level!r}: use DEBUG, INFO, WARNING or ERROR") from exc
    # PRC logs at INFO/DEBUG on every call; keep it quiet unless asked.
    logging.getLogger("irods").setLevel(max(logging.WARNING, root.level))
