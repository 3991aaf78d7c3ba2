"""Log lines shaped like the real server's spdlog output: [time][pid][logger][level] message."""

from __future__ import annotations

import logging
import sys

_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
}
_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record.ovms_level = _NAMES.get(record.levelno, record.levelname.lower())
        return super().format(record)


def configure(level: str, log_path: str | None) -> None:
    fmt = _Formatter(
        "[%(asctime)s.%(msecs)03d][%(process)d][%(name)s][%(ovms_level)s] %(message)s", "%Y-%m-%d %H:%M:%S"
    )
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
    if log_path:
        handlers.append(logging.FileHandler(log_path))
    root = logging.getLogger()
    root.handlers.clear()
    for handler in handlers:
        handler.setFormatter(fmt)
        root.addHandler(handler)
    root.setLevel(_LEVELS.get(level, logging.INFO))
    logging.getLogger("openvino").setLevel(logging.WARNING)
