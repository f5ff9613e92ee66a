"""The small experiment through a real SLURM cluster, with both profiles; the tables must equal
the local run's exactly (same code, same seeds, same thread count per job on the CPU). In the
slurm plugin's run a running model job is cancelled (scancel) and must be retried."""

import subprocess
import threading
import time

import pytest

from .conftest import assert_same_tables, cluster_profile, run, snakemake_cmd

pytestmark = pytest.mark.workflow

# without an accounting database the slurm plugin must poll squeue; no accounts on this cluster;
# quick polling keeps a small run short
SLURM_PLUGIN = (
    "--slurm-status-command",
    "squeue",
    "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "2",
)


def test_slurm_plugin_profile_survives_scancel_and_matches_local(slurm, tmp_path, local_run):
    prof = cluster_profile("slurm", tmp_path)
    results = tmp_path / "results"
    cancelled = []

    def cancel_first_model_job():
        t0 = time.monotonic()
        while time.monotonic() - t0 < 600 and not cancelled:
            if (results / "small/plan/candidates.parquet").exists():
                out = subprocess.run(
                    ["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True
                ).stdout
                if out.split():
                    subprocess.run(["scancel", out.split()[0]], check=True)
                    cancelled.append(out.split()[0])
            time.sleep(0.5)

    watcher = threading.Thread(target=cancel_first_model_job, daemon=True)
    watcher.start()
    proc = run(
        snakemake_cmd(
            results, "--workflow-profile", str(prof), "--slurm-logdir", str(tmp_path / "slurm-logs"), *SLURM_PLUGIN
        )
    )
    watcher.join(timeout=5)
    assert cancelled, "no SLURM job was seen running"
    assert "has been submitted with SLURM jobid" in proc.stdout + proc.stderr
    assert_same_tables(results, local_run)


def test_cluster_generic_profile_matches_local(slurm, tmp_path, local_run):
    prof = cluster_profile("cluster-generic", tmp_path)
    results = tmp_path / "results"
    proc = run(snakemake_cmd(results, "--workflow-profile", str(prof), "--seconds-between-status-checks", "2"))
    assert "external jobid" in (proc.stdout + proc.stderr).lower()
    assert_same_tables(results, local_run)
