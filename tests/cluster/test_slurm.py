"""The small experiment through a real SLURM cluster, with both profiles; the tables must equal
the local run's exactly (same code, same seeds, same thread count per job on the CPU). In the
slurm plugin's run one model job gets SIGTERM from scancel and one reaches its time limit: both
must resume from the models they finished."""

import os
import subprocess
import threading
import time

import pytest
import yaml

from .conftest import ROOT, assert_same_tables, cluster_profile, run, snakemake_cmd

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


def test_slurm_plugin_profile_survives_sigterm_and_a_time_limit_and_matches_local(slurm, tmp_path, local_run):
    """Two model jobs are stopped the ways SLURM stops them, and both resume with no hand step:
    one by `scancel --signal=TERM --full` once it has finished a model, one at its time limit
    (the profile's `--signal=TERM@120` with a 3-minute runtime, the job slowed to outlast it)."""
    prof = cluster_profile("slurm", tmp_path)
    cfg = prof / "config.v8+.yaml"
    edited = yaml.safe_load(cfg.read_text())  # the study's unlearning jobs get 3 minutes
    assert "unlearn" in edited["set-resources"], "the profile no longer sets the unlearn rule's resources"
    edited["set-resources"]["unlearn"] = {**edited["set-resources"]["unlearn"], "runtime": "3 * attempt"}
    cfg.write_text(yaml.safe_dump(edited))
    results = tmp_path / "results"
    signalled = []

    def sigterm_a_job_with_a_finished_model():
        t0 = time.monotonic()
        scratch = results / "small/scratch/original/none"
        while time.monotonic() - t0 < 600 and not signalled:
            if any(scratch.glob("shard-*/model-*")):
                out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True, text=True)
                for line in out.stdout.splitlines():
                    if "train_original" in line:
                        subprocess.run(["scancel", "--signal=TERM", "--full", line.split()[0]], check=True)
                        signalled.append(line)
                        break
            time.sleep(0.3)

    watcher = threading.Thread(target=sigterm_a_job_with_a_finished_model, daemon=True)
    watcher.start()
    # SLURM sends the profile's TERM@120 at its first 30-s check once 120 s are left: 60-90 s into a
    # 3-minute runtime, after the first model (a 2-minute runtime put it in the first 30 s, where it
    # can fall before the step starts, lost, or in the imports, killing a job with no model kept).
    # 60 s after each model: four models outlast even the limit's own SIGTERM (180 s)
    env = {**os.environ, "UMIA_SLOW": "unlearn/gradient_ascent/001:60,train_original/000:3,train_original/001:3"}
    cmd = snakemake_cmd(
        results, "--workflow-profile", str(prof), "--slurm-logdir", str(tmp_path / "slurm-logs"), *SLURM_PLUGIN
    )
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    watcher.join(timeout=5)
    assert signalled, "no train_original job was seen running with a finished model"
    assert "has been submitted with SLURM jobid" in proc.stdout + proc.stderr
    logs = [(results / "small/logs/train" / f"original-shard-{s:03d}.log").read_text() for s in (0, 1)]
    assert any("resuming: " in log for log in logs), "the signalled job did not resume from its models"
    timed = (results / "small/logs/unlearn/gradient_ascent-shard-001.log").read_text()
    assert "resuming: " in timed, "the job stopped at its time limit did not resume from its models"
    assert_same_tables(results, local_run)


def test_cluster_generic_profile_matches_local(slurm, tmp_path, local_run):
    prof = cluster_profile("cluster-generic", tmp_path)
    results = tmp_path / "results"
    proc = run(snakemake_cmd(results, "--workflow-profile", str(prof), "--seconds-between-status-checks", "2"))
    assert "external jobid" in (proc.stdout + proc.stderr).lower()
    assert_same_tables(results, local_run)
