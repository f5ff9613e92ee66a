"""umia status on a study in progress (umia.report.status): models counted from finished shards
and from the scratch folders of shards still running, and an ETA from the run's pace."""

import json
import os
import socket
import time

import pytest

from umia.config import resolve
from umia.report import status
from umia.runtime import runlock, study


def test_a_running_study_counts_shards_and_scratch_models_and_gives_an_eta(tmp_path, raw_config, schema):
    cfg = resolve({**raw_config, "n_models": 8, "shard_size": 4, "methods": ["finetune", "scrub"]}, schema)
    study.stamp(tmp_path, cfg)
    start = time.time() - 100
    lock = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start)),
    }
    (tmp_path / runlock.NAME).write_text(json.dumps(lock))
    for stage, method in (("original", "none"), ("retrain", "retrain")):
        (tmp_path / f"shards/{stage}/{method}").mkdir(parents=True)
        (tmp_path / f"shards/{stage}/{method}/shard-000.parquet").write_bytes(b"")  # 4 models each
    for k in range(3):  # shard 1 of the originals running: 3 of its models finished
        (tmp_path / f"scratch/original/none/shard-001/model-{k:05d}").mkdir(parents=True)
    st = status.status(tmp_path, now=time.time())
    by = {s.name: s for s in st.stages}
    assert (by["train originals"].done, by["train originals"].total, by["train originals"].running) == (7, 8, 1)
    assert (by["train retrains"].done, by["unlearn (2 methods)"].done, by["unlearn (2 methods)"].total) == (4, 0, 16)
    # 11 models in the 100 s since the run started: the 21 left (1 + 4 + 16) take about 21 * 100 / 11 s
    assert st.eta_seconds == pytest.approx(21 * 100 / 11, rel=0.05)
    text = status.render(st)
    assert "running since" in text and "7 / 8" in text and "(1 shard in progress)" in text and "about 3 min" in text


def test_status_of_a_folder_with_no_study_is_one_line(tmp_path):
    with pytest.raises(status.NoStudy, match="holds no umia study a run has started"):
        status.status(tmp_path)


def test_the_plan_says_the_work_and_the_time_left_from_earlier_jobs(tmp_path, raw_config, schema):
    cfg = resolve({**raw_config, "n_models": 8, "shard_size": 4, "methods": ["finetune", "scrub"]}, schema)
    line = status.plan(tmp_path, cfg)
    assert line == f"umia study {cfg['experiment']}: 16 models to train, 16 unlearnings, 32 models to score; 0 done"
    for kind, job, seconds in (("train", "original-shard-000", 8.0), ("unlearn", "finetune-shard-000", 2.0)):
        (tmp_path / "benchmarks" / kind).mkdir(parents=True)
        (tmp_path / "benchmarks" / kind / f"{job}.tsv").write_text(f"s\th:m:s\n{seconds}\t0:00:08\n")
    (tmp_path / "shards/original/none").mkdir(parents=True)
    (tmp_path / "shards/original/none/shard-000.parquet").write_bytes(b"")
    line = status.plan(tmp_path, cfg)
    # 2 s a model to train (8 s a job of 4), 0.5 s to unlearn (2 s a job of 4): 12 x 2 + 16 x 0.5 = 32 s
    assert line.endswith(
        "4 done; earlier jobs here took 2 s a model to train, 0.5 s a model to unlearn: about 32 s of model jobs left"
        " (on one slot)"
    )
