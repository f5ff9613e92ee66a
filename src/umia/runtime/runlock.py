"""One run at a time on one results folder.

Snakemake locks the folder it runs in; two runs of one experiment started from two folders (or
two login nodes) would both write the same results. ``acquire`` takes ``<results>/.umia-run.lock``
(host, process, start time, folder) for the whole run and ``release`` gives it back; a second run
stops at once with one line naming the first. A lock left by a run that was killed is taken over
when its process is gone from this host; one from another host is left to the user, since its
process cannot be seen from here.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from umia.errors import UmiaError

NAME = ".umia-run.lock"


class RunLocked(UmiaError):
    """Another run holds the results folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def acquire(results: str | os.PathLike) -> Path:
    """Take the results folder's lock for this process; RunLocked if a live run holds it."""
    folder = Path(results)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    me["cwd"] = os.getcwd()
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _read(path)
            if held.get("host") == me["host"] and held.get("pid") == me["pid"]:
                return path  # ours already
            if held.get("host") == me["host"] and not _alive(int(held.get("pid", -1))):
                path.unlink(missing_ok=True)  # its run was killed: nobody holds it
                continue
            raise RunLocked(
                f"{folder} is in use by the run started {held.get('started', '?')} on host {held.get('host', '?')} "
                f"(process {held.get('pid', '?')}, in {held.get('cwd', '?')}); wait for it to end, "
                f"or if that run is gone, delete {path}"
            ) from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise RunLocked(f"{path} could not be taken; delete it if no run is using {folder}")


def release(results: str | os.PathLike) -> None:
    """Give the lock back, if this process holds it."""
    path = Path(results) / NAME
    held = _read(path)
    if held.get("host") == socket.gethostname() and held.get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def held(results: str | os.PathLike) -> dict | None:
    """The lock of the run using ``results`` (host, pid, started, cwd), or None where no live run
    holds it (no lock, or the lock of a process on this host that is gone)."""
    path = Path(results) / NAME
    if not path.is_file():
        return None
    lock = _read(path)
    if lock.get("host") == socket.gethostname() and not _alive(int(lock.get("pid", -1))):
        return None
    return lock or None
