"""Structured logging: one event name per line plus key/value context, JSON by default."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_PLAIN = (str, int, float, bool, type(None))
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            # Context passed with extra=...; libraries (kopf) attach whole objects there too,
            # so only plain values are kept.
            if key not in _STANDARD and not key.startswith("_") and isinstance(value, _PLAIN):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


def configure(level: str = "INFO", *, json_format: bool = True, stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level.upper())
    except ValueError as exc:
        raise SystemExit(f"invalid log level {level!r}: use DEBUG, INFO, WARNING or ERROR") from exc
    # PRC logs at INFO/DEBUG on every call; keep it quiet unless asked.
    logging.getLogger("irods").setLevel(max(logging.WARNING, root.level))
