"""Partial shards survive: a shard job stopped by SIGTERM (what SLURM sends on preemption and at a
time limit) after k of its K models keeps them, and its rerun computes only the other K - k and
writes, byte for byte, the files an uninterrupted job writes (umia.runtime.scratch, umia.stages.shards)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from umia import io
from umia.runtime import faults
from umia.runtime.preempt import Preempted
from umia.runtime.scratch import Partial, Scratch, folder_for
from umia.stages.shards import train_shard, unlearn_shard

from .conftest import DIGITS_RECIPE

K = 4  # models in the shard
JOB = {
    "seed": 0,
    "shard": 0,
    "shard_size": K,
    "config_hash": "h",
    "device": "cpu",
    "task_args": {"network": "mlp", "width": 16, "views": ["identity", "mirror"]},
}
RECIPE = {**DIGITS_RECIPE, "epochs": 3}
UNLEARN = {"epochs": 2, "lr": 0.02, "batch_size": 32, "label_smoothing": 0.0, "flip": False, "translate": 0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("scratch")
    cand = root / "candidates.parquet"
    ids = np.arange(0, 60, 3)
    io.write_table(pd.DataFrame({"example_id": ids, "label": np.zeros(len(ids), np.int16)}), cand, io.CANDIDATES, "h")
    ref = _outputs(root / "ref", "original")
    train_shard(
        task="image", data=str(digits), candidates=str(cand), outputs=ref, stage="original", recipe=RECIPE, **JOB
    )
    return {"root": root, "data": str(digits), "candidates": str(cand), "ref": ref}


def _outputs(folder: Path, stage: str, method: str = "none") -> dict[str, str]:
    base = folder / "results"
    return {
        "scores": str(base / f"shards/{stage}/{method}/shard-000.parquet"),
        "ckpt": str(base / f"models/{stage}/{method}/shard-000.pt"),
    }


def _train(setup, outputs):
    train_shard(
        task="image",
        data=setup["data"],
        candidates=setup["candidates"],
        outputs=outputs,
        stage="original",
        recipe=RECIPE,
        **JOB,
    )


def _preempt_after(monkeypatch, k: int) -> None:
    monkeypatch.setenv("UMIA_PREEMPT", f"train_original/000:{k},unlearn/finetune/000:{k}")
    faults.arm("train_original", {"shard": "000"}, 1)


def _trained(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("original model")]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_preempted_training_job_resumes_with_the_models_it_finished(setup, tmp_path, monkeypatch, caplog, k):
    out = _outputs(tmp_path, "original")
    _preempt_after(monkeypatch, k)
    with pytest.raises(Preempted, match=f"received SIGTERM with {k} of {K} models finished"):
        _train(setup, out)
    assert not Path(out["scores"]).exists() and not Path(out["ckpt"]).exists()  # nothing half-written
    assert len(list(folder_for(out["scores"]).glob("model-*"))) == k
    faults.arm("train_original", {"shard": "000"}, 2)  # the retry: nothing injected
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="umia"):
        _train(setup, out)
    assert len(_trained(caplog)) == K - k  # only the models the stopped run had not finished
    assert any(f"resuming: {k} of {K} models were finished" in r.getMessage() for r in caplog.records)
    for name in ("scores", "ckpt"):  # what an uninterrupted job writes, byte for byte
        assert Path(out[name]).read_bytes() == Path(setup["ref"][name]).read_bytes(), name
    assert not (tmp_path / "results/scratch").exists()  # the scratch goes once the shard is written


def test_a_preempted_unlearning_job_resumes_and_writes_the_same_tables(setup, tmp_path, monkeypatch, caplog):
    def run(folder):
        out = {**_outputs(folder, "unlearned", "finetune")}
        out["trajectory"] = str(folder / "results/shards/trajectory/finetune/shard-000.parquet")
        unlearn_shard(
            task="image",
            data=setup["data"],
            candidates=setup["candidates"],
            originals=setup["ref"]["ckpt"],
            outputs=out,
            method="finetune",
            method_name="finetune",
            settings=UNLEARN,
            **JOB,
        )
        return out

    faults.arm("unlearn", {"method": "finetune", "shard": "000"}, 2)
    ref = run(tmp_path / "ref")
    monkeypatch.setenv("UMIA_PREEMPT", "unlearn/finetune/000:2")
    faults.arm("unlearn", {"method": "finetune", "shard": "000"}, 1)
    with pytest.raises(Preempted, match="with 2 of 4 models finished"):
        run(tmp_path / "cut")
    faults.arm("unlearn", {"method": "finetune", "shard": "000"}, 2)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="umia"):
        out = run(tmp_path / "cut")
    assert len([r for r in caplog.records if "forgot" in r.getMessage()]) == K - 2
    for name in ("scores", "ckpt", "trajectory"):
        assert Path(out[name]).read_bytes() == Path(ref[name]).read_bytes(), name


def _partial_setup(setup, tmp_path, monkeypatch) -> dict[str, str]:
    """A training job stopped after 2 models: its scratch holds models 0 and 1."""
    out = _outputs(tmp_path, "original")
    _preempt_after(monkeypatch, 2)
    with pytest.raises(Preempted):
        _train(setup, out)
    faults.arm("train_original", {"shard": "000"}, 2)
    return out


def _break_other_config(folder: Path) -> str:
    stamp = folder / "model-00000/done.json"
    stamp.write_text(stamp.read_text().replace('"config_hash": "h"', '"config_hash": "other"'))
    return "written by another config (hash other, this h)"


def _break_truncated(folder: Path) -> str:
    table = folder / "model-00000/scores.parquet"
    table.write_bytes(table.read_bytes()[:100])
    return "does not read"


def _break_foreign_model(folder: Path) -> str:
    shutil.copytree(folder / "model-00000", folder / "model-00009")
    return "holds model 9, not one of this shard's (0, 1, 2, 3)"


@pytest.mark.parametrize("damage", [_break_other_config, _break_truncated, _break_foreign_model])
def test_a_bad_scratch_file_is_detected_and_its_model_recomputed(setup, tmp_path, monkeypatch, caplog, damage):
    out = _partial_setup(setup, tmp_path, monkeypatch)
    why = damage(folder_for(out["scores"]))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="umia"):
        _train(setup, out)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(why in w for w in warnings), warnings
    # models 2 and 3 were never finished; model 0 is redone too unless only a foreign folder was added
    assert len(_trained(caplog)) == (2 if damage is _break_foreign_model else 3)
    assert Path(out["scores"]).read_bytes() == Path(setup["ref"]["scores"]).read_bytes()


def test_scratch_round_trip_and_debris(tmp_path):
    s = Scratch(tmp_path / "scratch", "h", [3, 4])
    frame = pd.DataFrame({"model_id": np.array([3, 3], np.int32), "phi": np.array([1.5, -2.0], np.float32)})
    records = [(3, np.array([7, 8]), p, 2 * p, 8, np.full((2, 2), p, np.float32)) for p in range(3)]
    s.save(3, Partial({"scores": frame}, {"w": torch.ones(2)}, records))
    (tmp_path / "scratch/.model-00004.tmp-1").mkdir()  # a kill's debris: removed without a word
    back = s.load()
    assert list(back) == [3] and not (tmp_path / "scratch/.model-00004.tmp-1").exists()
    pd.testing.assert_frame_equal(back[3].tables["scores"], frame)
    assert back[3].state["w"].tolist() == [1.0, 1.0]
    assert [r[2:5] for r in back[3].trajectory] == [(0, 0, 8), (1, 2, 8), (2, 4, 8)]
    np.testing.assert_array_equal(back[3].trajectory[2][5], records[2][5])
    s.clear()
    assert not (tmp_path / "scratch").exists()


def test_scratch_folder_mirrors_the_shard():
    assert folder_for("r/x/shards/unlearned/ssd@a=1/shard-003.parquet") == Path(
        "r/x/scratch/unlearned/ssd@a=1/shard-003"
    )
    assert folder_for("/tmp/scores.parquet") == Path("/tmp/scores.scratch")


def test_an_unreadable_shard_is_named_with_the_fix(tmp_path):
    from umia.stages.gather import gather

    good = tmp_path / "shard-000.parquet"
    frame = pd.DataFrame({c: [] for c in io.SCORES.names})
    io.write_table(frame, good, io.SCORES, "h")
    bad = tmp_path / "shard-001.parquet"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(io.TableError) as e:
        gather(parts=[str(good), str(bad)], out=str(tmp_path / "all.parquet"), config_hash="h")
    line = str(e.value)
    assert "\n" not in line and str(bad) in line and "run snakemake again" in line
    assert not bad.exists() and (tmp_path / "shard-001.parquet.broken").exists()  # set aside, its job redone
    assert not (tmp_path / "all.parquet").exists()
    pq.read_metadata(good)  # the good shard is untouched


def test_the_first_sigterm_finishes_the_model_in_hand_the_second_stops_at_once(tmp_path):
    import signal

    from umia.runtime.preempt import Preemption

    done = {0: None}
    p = Preemption("original shard 0", 4, done, tmp_path)
    p.check()  # nothing asked: go on
    p.handler(signal.SIGTERM, None)  # the first: noted, the model in hand goes on
    with pytest.raises(Preempted, match="with 1 of 4 models finished; they are kept in"):
        p.check()
    with pytest.raises(Preempted):
        p.handler(signal.SIGTERM, None)  # the second: at once
