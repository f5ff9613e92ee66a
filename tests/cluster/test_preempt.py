"""Nothing lost when a job is stopped: shard jobs preempted (SIGTERM) after k of their K models
resume from the k; a second run on the same results folder stops at once; a broken shard file
or a removed contract output is rebuilt by the next plain `snakemake`. (SLURM's own signals,
scancel --signal=TERM and a time limit, are in test_slurm.py.)"""

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from .conftest import ROOT, assert_same_tables, run, snakemake_cmd

pytestmark = pytest.mark.workflow

# job -> the finished models after which it sends itself SIGTERM (shards of K=4 models)
PREEMPT = {"train_original/000": 1, "train_retrain/001": 2, "unlearn/finetune/000": 3}
LOGS = {
    "train_original/000": ("logs/train/original-shard-000.log", "original model"),
    "train_retrain/001": ("logs/train/retrain-shard-001.log", "retrain model"),
    "unlearn/finetune/000": ("logs/unlearn/finetune-shard-000.log", "forgot"),
}


def test_preempted_jobs_resume_from_the_models_they_finished(tmp_path, local_run):
    results = tmp_path / "results"
    # a lock left by a run that was killed (its process is gone): taken over, not an error
    (results / "small").mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = {"host": socket.gethostname(), "pid": dead.pid, "started": "earlier", "cwd": "/"}
    (results / "small/.umia-run.lock").write_text(json.dumps(stale))
    # and one more job fails its first attempt outright (an injected fault): retried too
    env = {**os.environ, "UMIA_PREEMPT": ",".join(f"{j}:{k}" for j, k in PREEMPT.items())}
    env["UMIA_FAULT"] = "unlearn/gradient_ascent/001:1"
    cmd = snakemake_cmd(results, "--cores", "2", "--retries", "1")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "received SIGTERM with 1 of 4 models finished" in proc.stdout + proc.stderr
    assert "fault injected by UMIA_FAULT" in proc.stdout + proc.stderr
    for job, k in PREEMPT.items():
        log, line = LOGS[job]
        text = (results / "small" / log).read_text()  # the retry's log
        assert f"resuming: {k} of 4 models were finished" in text, job
        assert text.count(line) == 4 - k, job  # only the models the stopped attempt had not finished
    assert_same_tables(results, local_run)
    for shard in ("original/none/shard-000", "retrain/retrain/shard-001", "unlearned/finetune/shard-000"):
        a, b = (r / "small/shards" / f"{shard}.parquet" for r in (results, local_run))
        assert a.read_bytes() == b.read_bytes(), shard  # what an uninterrupted job writes
    assert not (results / "small/scratch").exists()
    assert not (results / "small/.umia-run.lock").exists()  # given back at the end


def test_a_second_run_on_the_same_results_stops_at_once(tmp_path):
    results = tmp_path / "results"
    lock = results / "small/.umia-run.lock"
    lock.parent.mkdir(parents=True)
    first = {"host": socket.gethostname(), "pid": os.getpid(), "started": "2026-12-01 09:00:00", "cwd": "/elsewhere"}
    lock.write_text(json.dumps(first))  # a live run (this test's own process) holds the folder
    (results / "small/marker").write_text("the first run's")
    before = {p: p.stat().st_mtime_ns for p in (results / "small").iterdir()}
    t0 = time.monotonic()
    proc = subprocess.run(snakemake_cmd(results, "--cores", "2"), cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and time.monotonic() - t0 < 60
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("umia: ")]
    assert len(lines) == 1 and "is in use by the run started 2026-12-01 09:00:00" in lines[0], proc.stderr[-2000:]
    assert f"(process {os.getpid()}, in /elsewhere)" in lines[0]
    after = {p: p.stat().st_mtime_ns for p in (results / "small").iterdir()}
    assert after == before  # nothing of the first run touched, nothing new written
    assert json.loads(lock.read_text()) == first


def test_a_broken_shard_and_a_removed_table_are_rebuilt(tmp_path, local_run):
    results = tmp_path / "results"
    shutil.copytree(local_run, results)  # a finished run (times kept: nothing is out of date)
    shard = results / "small/shards/original/none/shard-001.parquet"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])  # cut short, as a node crash leaves it
    proc = subprocess.run(snakemake_cmd(results, "--cores", "2"), cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("umia: ")]
    assert lines and f"{shard}: not a readable Parquet file" in lines[0] and "run snakemake again" in lines[0]
    run(snakemake_cmd(results, "--cores", "2"))  # the plain command again: the shard's job is redone
    assert_same_tables(results, local_run)
    (results / "small/scores/scores.parquet").unlink()
    (results / "small/trajectory/trajectory.parquet").unlink()
    proc = run(snakemake_cmd(results, "--cores", "2"))
    assert (results / "small/scores/scores.parquet").exists() and (results / "small/trajectory").exists()
    assert "rule train_original" not in proc.stdout + proc.stderr  # rebuilt from the shards, no model redone
    assert_same_tables(results, local_run)
