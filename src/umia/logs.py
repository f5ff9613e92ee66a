"""Logging for batch jobs: one handler per job, to the rule's log file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def _log_uncaught(kind, value, tb) -> None:
    """Put a job's fatal error into its log file too, not only on stderr."""
    logging.getLogger("umia").critical("job failed", exc_info=(kind, value, tb))


def setup_logging(path: str | None = None, level: int = logging.INFO) -> None:
    """Send log records to ``path`` (and stderr), one line each with a timestamp."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    sys.excepthook = _log_uncaught
    logging.basicConfig(
        level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
