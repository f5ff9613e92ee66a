"""A local run spreads its model jobs over the GPUs a scheduler made visible, with the default
profile and no flag: two fake GPUs (CUDA_VISIBLE_DEVICES on a CPU machine), one job each."""

import os
import re

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
    ]
    # as SLURM sets it for a job's two GPUs; the originals' jobs are slowed so that they overlap
    slow = "train_original/000:3,train_original/001:3"
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
    placed = {}
    for log in sorted((r / "logs/train").glob("*.log")):
        found = re.findall(r"running on GPU (\S+) \(CUDA_VISIBLE_DEVICES=(\S+)\), slot 1 of 1", log.read_text())
        assert len(found) == 1, log
        gpu, visible = found[0]
        assert gpu == visible
        placed[log.name] = gpu
    assert len(placed) == 4
    # the two originals' jobs ran at once, on both GPUs; no job ran on a GPU the scheduler did not give
    assert {placed["original-shard-000.log"], placed["original-shard-001.log"]} == {"3", "5"}
    assert set(placed.values()) <= {"3", "5"}
