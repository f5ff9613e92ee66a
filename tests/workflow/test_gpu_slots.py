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


def test_a_run_given_jobs_leaves_the_gpus_to_its_scheduler(tmp_path):
    """--jobs is how Snakemake knows a cluster run: no slots, no cap, and one line saying so."""
    cfg = {"results_dir": str(tmp_path), "experiment": "jobs", "device": "auto", "methods": ["finetune"]}
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "3,5"}
    args = ["-n", "--workflow-profile", "profiles/default", "--jobs", "2", "--configfile", str(tmp_path / "jobs.yaml")]
    proc = snakemake(*args, env=env)
    assert "umia: --jobs given: a cluster run, whose scheduler gives each model job its GPU" in proc.stderr
    assert not re.search(r"Provided resources:.*\bgpu\b", proc.stdout + proc.stderr)
