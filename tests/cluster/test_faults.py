"""Failed jobs: with --keep-going every independent branch finishes and Snakemake's summary names
what is missing. (An injected fault retried: test_preempt, beside the preempted jobs; a job
stopped by SLURM and retried: test_slurm.)"""

import os
import subprocess

import pytest

from .conftest import ROOT, run, snakemake_cmd

pytestmark = pytest.mark.workflow


def _run_env(cmd, fault: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "UMIA_FAULT": fault}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc


def test_keep_going_finishes_every_independent_branch(tmp_path):
    results = tmp_path / "results"
    cmd = snakemake_cmd(results, "--cores", "2", "--retries", "1", "--keep-going")
    proc = _run_env(cmd, "unlearn/finetune/000:99", check=False)
    assert proc.returncode != 0
    shards = results / "small/shards"
    assert not (shards / "unlearned/finetune/shard-000.parquet").exists()
    for done in (
        "original/none/shard-000",
        "original/none/shard-001",
        "retrain/retrain/shard-000",
        "retrain/retrain/shard-001",
        "unlearned/finetune/shard-001",
        "unlearned/gradient_ascent/shard-000",
        "unlearned/gradient_ascent/shard-001",
    ):
        assert (shards / f"{done}.parquet").exists(), done
    summary = run(snakemake_cmd(results, "--summary")).stdout
    missing = [ln for ln in summary.splitlines() if "unlearned/finetune/shard-000.parquet" in ln]
    assert missing and "missing" in missing[0]
