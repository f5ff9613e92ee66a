"""Fault injection for testing retries and --keep-going on a cluster (never set in production).

UMIA_FAULT="<rule>/<wildcard values joined by />:<attempts>" makes that job fail its first
<attempts> attempts, e.g. UMIA_FAULT="unlearn/finetune/000:1" (fails once, then succeeds on the
retry) or "train_original/001:99" (fails every time).
"""

from __future__ import annotations

import os
from collections.abc import Mapping


class InjectedFault(RuntimeError):
    """The failure asked for by UMIA_FAULT."""


def maybe_fail(rule: str, wildcards: Mapping[str, str], attempt: int) -> None:
    spec = os.environ.get("UMIA_FAULT")
    if not spec:
        return
    target, _, times = spec.rpartition(":")
    job = "/".join([rule, *wildcards.values()])
    if job == target and attempt <= int(times):
        raise InjectedFault(f"fault injected by UMIA_FAULT={spec} into {job}, attempt {attempt}")
