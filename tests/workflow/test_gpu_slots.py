"""A local run spreads its model jobs over the GPUs a scheduler made visible, with the default
profile and no flag: two fake GPUs (CUDA_VISIBLE_DEVICES on a CPU machine), one job each; and an
unlearning job spans training shards (unlearn_shard_size)."""

import os
import re
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from tests.workflow.conftest import TINY, snakemake


def test_model_jobs_spread_over_the_visible_gpus(tmp_path):
    results = tmp_path / "results"
    cfg = {
        "results_dir": str(results),
        "experiment": "slots",
        "device": "auto",  # no GPU here: the jobs run on the CPU, but each takes its slot first
        "jobs_per_gpu": 1,
        "n_models": 4,
        "shard_size": 2,
        "unlearn_shard_size": 4,  # one unlearning job reads both training shards' originals
        "candidates": {"mode": "random", "size": 60},
        "methods": ["finetune"],
        "attacks": {"n_folds": 2},
    }
    (tmp_path / "slots.yaml").write_text(yaml.safe_dump(cfg))
    r = results / "slots"
    targets = [
        f"{r}/shards/{st}/{m}/shard-{s:03d}.parquet"
        for st, m in [("original", "none"), ("retrain", "retrain")]
        for s in range(2)
    ] + [f"{r}/shards/unlearned/finetune/shard-000.parquet"]
    # as SLURM sets it for a job's two GPUs; the training jobs are slowed so that they overlap
    slow = ",".join(f"{rule}/{s:03d}:3" for rule in ("train_original", "train_retrain") for s in range(2))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "3,5", "UMIA_SLOW": slow}
    args = [
        "--workflow-profile",
        "profiles/default",
        "--cores",
        "4",
        "--configfile",
        str(TINY),
        str(tmp_path / "slots.yaml"),
    ]
    proc = snakemake(*targets, *args, env=env)
    # the scheduler was told two GPU slots: two model jobs at once, not one (the old profile) nor all
    assert re.search(r'Provided resources:.*\bgpu(=|", )2\b', proc.stdout + proc.stderr)
    spans = []  # (start, end, GPU) of each training job
    for log in sorted((r / "logs/train").glob("*.log")):
        text = log.read_text()
        found = re.findall(r"running on GPU (\S+) \(CUDA_VISIBLE_DEVICES=(\S+)\), slot 1 of 1", text)
        assert len(found) == 1 and found[0][0] == found[0][1], log
        stamps = re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+) ", text, re.M)
        spans.append((stamps[0], stamps[-1], found[0][0]))
    assert len(spans) == 4
    # both GPUs got jobs, and none ran on a GPU the scheduler did not give
    assert {gpu for *_, gpu in spans} == {"3", "5"}
    # jobs that ran at the same time ran on different GPUs (one slot each)
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, "the slowed jobs never overlapped"
    assert all(a[2] != b[2] for a, b in overlapping)
    assert re.search(r"running on GPU [35] ", (r / "logs/unlearn/finetune-shard-000.log").read_text())
    unlearned = pq.read_table(f"{r}/shards/unlearned/finetune/shard-000.parquet", columns=["model_id"])
    assert sorted(set(unlearned["model_id"].to_pylist())) == [0, 1, 2, 3]

    # the same jobs one at a time (no GPU visible: they take turns) give the same tables, row for row
    serial = tmp_path / "serial"
    cfg["results_dir"] = str(serial)
    (tmp_path / "serial.yaml").write_text(yaml.safe_dump(cfg))
    env1 = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env1["PATH"] = os.pathsep.join(
        p for p in env1.get("PATH", "").split(os.pathsep) if not (Path(p) / "nvidia-smi").exists()
    )
    args1 = [*args[:-1], str(tmp_path / "serial.yaml")]
    proc1 = snakemake(*[t.replace(str(results), str(serial)) for t in targets], *args1, env=env1)
    assert re.search(r'Provided resources:.*\bgpu(=|", )1\b', proc1.stdout + proc1.stderr)  # no GPU: in turn
    for target in targets:
        a = pq.read_table(target).to_pandas()
        b = pq.read_table(target.replace(str(results), str(serial))).to_pandas()
        assert len(a) > 0 and a.equals(b), target


def _one_shard(tmp_path, name: str) -> tuple[list[str], Path]:
    """A config of one training shard of 4 models on the CPU (device auto, no GPU here), and its target."""
    cfg = {
        "results_dir": str(tmp_path / "results"),
        "experiment": name,
        "device": "auto",
        "n_models": 4,
        "shard_size": 4,
        "candidates": {"mode": "random", "size": 60},
        "methods": ["finetune"],
        "attacks": {"n_folds": 2},
    }
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
    target = tmp_path / f"results/{name}/shards/original/none/shard-000.parquet"
    return [str(target), "--configfile", str(TINY), str(tmp_path / f"{name}.yaml")], target


def test_jobs_flag_keeps_the_slots_of_a_local_run(tmp_path):
    """`-j N`, which Snakemake users type by habit, is no cluster run: the local executor keeps the
    GPU slots (the executor decides, not the flag), and the model job takes one."""
    args, target = _one_shard(tmp_path, "jobs")
    proc = snakemake(
        *args, "--workflow-profile", "profiles/default", "-j", "8", env={**os.environ, "CUDA_VISIBLE_DEVICES": "3,5"}
    )
    out = proc.stdout + proc.stderr
    assert re.search(r'Provided resources:.*\bgpu(=|", )6\b', out)  # 2 GPUs x jobs_per_gpu 3
    assert "a cluster run" not in out
    log = (tmp_path / "results/jobs/logs/train/original-shard-000.log").read_text()
    assert target.exists() and re.search(r"running on GPU 3 \(CUDA_VISIBLE_DEVICES=3\), slot 1 of 3", log)


def test_a_cluster_executor_leaves_the_gpus_to_its_scheduler(tmp_path):
    """A run whose executor submits its jobs (here cluster-generic, with a submit command that starts
    the job script in the background, as a scheduler would) hands out no local slots: the model
    job takes the GPUs its scheduler gave it, and the run says so in one line."""
    args, target = _one_shard(tmp_path, "cluster")
    submit = tmp_path / "submit.sh"
    submit.write_text('#!/bin/bash\nsetsid bash "$1" > /dev/null 2>&1 < /dev/null &\necho $!\n')
    submit.chmod(0o755)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "3,5"}
    args = [
        *args,
        "--executor",
        "cluster-generic",
        "--cluster-generic-submit-cmd",
        str(submit),
        "--jobs",
        "2",
        "--seconds-between-status-checks",
        "1",
    ]
    proc = snakemake(*args, env=env)
    assert "umia: a cluster run: its scheduler gives each model job its GPU" in proc.stderr
    log = (tmp_path / "results/cluster/logs/train/original-shard-000.log").read_text()
    assert target.exists() and "original model 3" in log
    assert "running on GPU" not in log  # no local slot: CUDA_VISIBLE_DEVICES as the scheduler set it
