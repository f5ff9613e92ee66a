"""Fault injection for testing retries, --keep-going and preemption (never set in production).

UMIA_FAULT="<rule>/<wildcard values joined by />:<attempts>" makes that job fail its first
<attempts> attempts, e.g. UMIA_FAULT="unlearn/finetune/000:1" (fails once, then succeeds on the
retry) or "train_original/001:99" (fails every time).

UMIA_PREEMPT="<job>:<k>[,<job>:<k>...]" (jobs named as above) makes each named job send itself
SIGTERM, as SLURM does on preemption, once k models of its shard are finished, on its first
attempt only; UMIA_SLOW="<job>:<seconds>" makes it sleep that long after each model on its first
attempt (a job that runs into its time limit).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping


class InjectedFault(RuntimeError):
    """The failure asked for by UMIA_FAULT."""


def maybe_fail(rule: str, wildcards: Mapping[str, str], attempt: int) -> None:
    arm(rule, wildcards, attempt)
    spec = os.environ.get("UMIA_FAULT")
    if not spec:
        return
    target, _, times = spec.rpartition(":")
    job = "/".join([rule, *wildcards.values()])
    if job == target and attempt <= int(times):
        raise InjectedFault(f"fault injected by UMIA_FAULT={spec} into {job}, attempt {attempt}")


_armed: dict[str, float] = {}  # what this job's first attempt is to do after each finished model


def _jobs(variable: str) -> dict[str, str]:
    spec = os.environ.get(variable, "")
    return dict(item.rpartition(":")[::2] for item in spec.split(",") if item)


def arm(rule: str, wildcards: Mapping[str, str], attempt: int) -> None:
    """Read UMIA_PREEMPT and UMIA_SLOW for this job (called by its script, before the job runs)."""
    _armed.clear()
    if attempt != 1:
        return
    job = "/".join([rule, *wildcards.values()])
    if job in _jobs("UMIA_PREEMPT"):
        _armed["preempt"] = int(_jobs("UMIA_PREEMPT")[job])
    if job in _jobs("UMIA_SLOW"):
        _armed["slow"] = float(_jobs("UMIA_SLOW")[job])


def model_done(n_done: int) -> None:
    """Called by a shard job after each finished (and kept) model."""
    if "slow" in _armed:
        time.sleep(_armed["slow"])
    if _armed.get("preempt") == n_done:
        os.kill(os.getpid(), signal.SIGTERM)
