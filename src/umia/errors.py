"""Errors a user can fix: each carries one line that names the problem and the fix."""


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
