"""GPU slots for local runs: every visible GPU gets ``jobs_per_gpu`` model jobs at once, each job on
a slot of its own.

The workflow's main process finds the visible GPUs without importing torch (``visible``: the
``CUDA_VISIBLE_DEVICES`` a scheduler or the user set, else ``nvidia-smi``), tells the scheduler
how many model jobs may run at once (the ``gpu`` resource: GPUs x jobs per GPU) and hands the slots
to its jobs in the environment (``export``). A model job, before CUDA starts, takes the first free
slot (``claim``: an exclusive ``flock`` on one file per slot, spreading over the GPUs first) and
sets its own ``CUDA_VISIBLE_DEVICES`` to that slot's GPU. The lock is the process's: it is freed
when the job ends, however it ends.

Under SLURM (or any executor that is not local) nothing of this runs: the scheduler gives each job
its GPU, and ``CUDA_VISIBLE_DEVICES`` is left as it set it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "UMIA_GPU_SLOTS"  # "<gpu>,<gpu>,...;<jobs per GPU>;<SLURM job or empty>;<lock folder>", by the main process
_held: list = []  # the claimed slot's open lock file, kept for the life of the process
_claimed: list = []  # the claimed Slot


def visible(environ: dict | None = None) -> list[str]:
    """The GPUs a job may use, as ``CUDA_VISIBLE_DEVICES`` names them (indices, or UUIDs and MIG
    names). ``CUDA_VISIBLE_DEVICES`` when it is set (empty, or starting with -1: none); otherwise the
    indices ``nvidia-smi`` lists; none without a driver."""
    env = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in env:
        names = []
        for part in env["CUDA_VISIBLE_DEVICES"].split(","):
            part = part.strip()
            if not part or part.startswith("-1"):
                break  # CUDA stops at the first invalid entry
            names.append(part)
        return names
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip().isdigit()]


def lock_folder() -> Path:
    """One folder of slot locks per user and machine, so two runs on one machine share the slots."""
    return Path(tempfile.gettempdir()) / f"umia-gpu-slots-{os.getuid()}"


def export(gpus: list[str], jobs_per_gpu: int, folder: str | os.PathLike | None = None) -> int:
    """Hand the slots to the jobs this process starts (through the environment); the number of
    model jobs that may run at once."""
    # the run's own SLURM allocation, if it runs inside one: a job of another allocation (a cluster
    # executor's, which inherited this environment) is placed by its scheduler, not here
    allocation = os.environ.get("SLURM_JOB_ID", "")
    os.environ[ENV] = f"{','.join(gpus)};{jobs_per_gpu};{allocation};{folder or lock_folder()}"
    return len(gpus) * jobs_per_gpu


@dataclass(frozen=True)
class Slot:
    gpu: str  # as CUDA_VISIBLE_DEVICES names it
    index: int  # the slot on that GPU, 0 .. jobs_per_gpu - 1
    jobs_per_gpu: int

    def __str__(self) -> str:
        return f"GPU {self.gpu} (CUDA_VISIBLE_DEVICES={self.gpu}), slot {self.index + 1} of {self.jobs_per_gpu}"


def claim(poll: float = 0.5, environ: dict | None = None) -> Slot | None:
    """Take a free slot for this process and set ``CUDA_VISIBLE_DEVICES`` to its GPU; None where the
    main process handed out no slots (a cluster job, a CPU run). Call it before CUDA starts. Waits
    (logging once) while every slot is taken, e.g. by another run on the machine."""
    env = os.environ if environ is None else environ
    spec = env.get(ENV)
    if not spec:
        return None
    names, per, allocation, folder = spec.split(";", 3)
    gpus, per = [g for g in names.split(",") if g], int(per)
    if not gpus or env.get("SLURM_JOB_ID", "") != allocation:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    # slot 0 of every GPU first, then slot 1 ...: jobs spread over the GPUs before they share one
    order = [Slot(g, k, per) for k in range(per) for g in gpus]
    waited = False
    while True:
        for slot in order:
            f = open(Path(folder) / f"gpu-{slot.gpu.replace('/', '_')}-slot-{slot.index}.lock", "a")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            f.truncate(0)
            f.write(f"{os.getpid()}\n")  # the holder, for a user who looks
            f.flush()
            _held.append(f)
            _claimed.append(slot)
            env["CUDA_VISIBLE_DEVICES"] = slot.gpu
            log.info("running on %s", slot)
            return slot
        if not waited:
            log.info("every GPU slot is taken (another run on this machine?); waiting for one")
            waited = True
        time.sleep(poll)


def current() -> Slot | None:
    """The slot this process claimed, if any."""
    return _claimed[-1] if _claimed else None


def release() -> None:
    """Give back the slot this process holds (the end of the process does it too)."""
    while _held:
        _held.pop().close()
    _claimed.clear()
