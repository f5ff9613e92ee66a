"""Errors a user can fix: each carries one line that names the problem and the fix."""

from __future__ import annotations

from collections.abc import Iterable


class UmiaError(Exception):
    """Base of umia's user-facing errors; a job stops with ``umia: <message>`` and nothing else."""


class ConfigError(UmiaError, ValueError):
    """A configuration problem, with a message naming the key and the fix."""


class DataError(UmiaError, RuntimeError):
    """A data file that is missing, corrupted or of the wrong shape."""


class TableError(UmiaError, RuntimeError):
    """A table that is missing columns, of the wrong types, or from another config."""


class DeviceError(UmiaError, RuntimeError):
    """The configured device is not there."""


def one_line(e: BaseException) -> str:
    """An exception as ``Type: message`` on one line."""
    return f"{type(e).__name__}: {' '.join(str(e).split())}"


def some(items: Iterable[object], n: int = 5) -> str:
    """The first ``n`` of ``items`` joined by commas, with ``...`` if there are more."""
    items = list(items)
    return ", ".join(str(i) for i in items[:n]) + (", ..." if len(items) > n else "")
