"""Logging for batch jobs: one handler per job, to the rule's log file."""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path

from umia.errors import UmiaError


def _log_uncaught(kind, value, tb) -> None:
    """A job's fatal error: one line for the errors a user can fix (a full disk included), the
    traceback for anything else; both go to the job's log file too."""
    log = logging.getLogger("umia")
    if issubclass(kind, UmiaError) or (issubclass(kind, OSError) and value.errno == errno.ENOSPC):
        line = str(value)
        if not issubclass(kind, UmiaError):
            line = f"no space left on the device ({value.filename or value}); free space and rerun: finished files stay"
        record = log.makeRecord("umia", logging.CRITICAL, __file__, 0, f"umia: {line}", None, None)
        for handler in logging.getLogger().handlers:  # the job's log file; stderr gets the bare line
            if isinstance(handler, logging.FileHandler):
                handler.handle(record)
        print(f"umia: {line}", file=sys.stderr)
        return
    log.critical("job failed", exc_info=(kind, value, tb))


def setup_logging(path: str | None = None, level: int = logging.INFO) -> None:
    """Send log records to ``path``, one line each with a timestamp, and warnings and errors to
    stderr too (the terminal of a local run: per-epoch lines stay in the job's log). Without a
    ``path``, everything goes to stderr."""
    terminal = logging.StreamHandler(sys.stderr)
    handlers: list[logging.Handler] = [terminal]
    if path:  # a job: its chatter (one line an epoch, a model) to its log file, warnings to the terminal too
        terminal.setLevel(logging.WARNING)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    sys.excepthook = _log_uncaught
    logging.basicConfig(
        level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
