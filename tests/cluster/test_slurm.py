"""The small experiment through a real SLURM cluster, with both profiles; the tables must equal
the local run's exactly (same code, same seeds, same thread count per job on the CPU)."""

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


def test_slurm_plugin_profile_matches_local(slurm, tmp_path, local_run):
    prof = cluster_profile("slurm", tmp_path)
    results = tmp_path / "results"
    proc = run(
        snakemake_cmd(
            results, "--workflow-profile", str(prof), "--slurm-logdir", str(tmp_path / "slurm-logs"), *SLURM_PLUGIN
        )
    )
    assert "has been submitted with SLURM jobid" in proc.stdout + proc.stderr
    assert_same_tables(results, local_run)


def test_cluster_generic_profile_matches_local(slurm, tmp_path, local_run):
    prof = cluster_profile("cluster-generic", tmp_path)
    results = tmp_path / "results"
    proc = run(snakemake_cmd(results, "--workflow-profile", str(prof), "--seconds-between-status-checks", "2"))
    assert "external jobid" in (proc.stdout + proc.stderr).lower()
    assert_same_tables(results, local_run)
