"""What a model job does before it imports torch: log to the rule's log file, take a slot of a GPU
of its own in a local run (umia.runtime.gpus: CUDA_VISIBLE_DEVICES must be set before CUDA
starts), and, in the fault tests, fail where ``UMIA_FAULT`` says (umia.runtime.faults)."""

from __future__ import annotations

from collections.abc import Mapping

from umia.runtime import gpus
from umia.runtime.faults import maybe_fail
from umia.runtime.logs import setup_logging


def start(log: str, rule: str | None = None, wildcards: Mapping[str, str] | None = None, attempt: int | None = None):
    """Set up a model job: its log, its GPU slot and, given ``attempt``, an injected fault
    (``wildcards``: the job's, a mapping or Snakemake's named list)."""
    setup_logging(log)
    gpus.claim()
    if attempt is not None:
        maybe_fail(rule, dict(wildcards.items()) if wildcards is not None else {}, attempt)
