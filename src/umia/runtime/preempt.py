"""Preemption of a shard job: SIGTERM (what SLURM sends on preemption, at a time limit and on
``scancel --signal=TERM``) lets the model in hand finish and be kept in the job's scratch folder
(umia.runtime.scratch), then stops the job with one line; a rerun resumes from the kept models."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Mapping
from pathlib import Path

from umia.errors import UmiaError

log = logging.getLogger(__name__)


class Preempted(UmiaError):
    """SIGTERM (what SLURM sends on preemption, at a time limit and on scancel --signal=TERM)."""


class Preemption:
    """What a shard job does on SIGTERM: the first finishes the model in hand (``check``, called
    after each model is kept, then stops the job); a second abandons it at once. Either way the
    job stops with one line, its finished models kept in the scratch ``folder`` for the retry."""

    def __init__(self, what: str, n_models: int, done: Mapping, folder: Path):
        self.what, self.n_models, self.done, self.folder = what, n_models, done, folder
        self.asked = False

    def _stop(self) -> Preempted:
        return Preempted(
            f"{self.what} received SIGTERM with {len(self.done)} of {self.n_models} models finished; "
            f"they are kept in {self.folder} and a rerun of the job resumes from them"
        )

    def handler(self, signum, frame) -> None:
        """The SIGTERM handler."""
        if self.asked:
            raise self._stop()
        self.asked = True
        log.warning("SIGTERM: finishing the model in hand, then stopping (a second SIGTERM stops at once)")

    def check(self) -> None:
        """Stop here if SIGTERM came (call once a model is finished and kept)."""
        if self.asked:
            raise self._stop()


@contextlib.contextmanager
def preemptible(what: str, n_models: int, done: Mapping, folder: Path):
    """SIGTERM handled as ``Preemption`` says while the block runs; yields its ``check``."""
    p = Preemption(what, n_models, done, folder)
    old = signal.signal(signal.SIGTERM, p.handler)
    try:
        yield p.check
    finally:
        signal.signal(signal.SIGTERM, old)
