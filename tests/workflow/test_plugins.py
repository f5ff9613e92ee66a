"""Your own data and network: a generic .npz image dataset (3 channels, 28x28, 7 classes) with a
plug-in network and a plug-in method, through the whole workflow on the CPU.

The images are seeded noise around one template per class, so a small CNN learns the classes and
memorises the noise of its half; N=16 gives 16 trials an example, enough to check that every
table, figure and the report come out, and that the controls behave: U-LiRA against `none` above
chance (> 0.55 over 40 x 16 = 640 trials, where a coin's standard error is 0.02), `retrain`
within 0.08 of chance.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from .conftest import ROOT, copy_plugins, snakemake

pytestmark = pytest.mark.workflow

NETS = ROOT / "tests/workflow/plugins/nets.py"
N_CLASSES, SIDE, N_TRAIN, N_TEST = 7, 28, 420, 140


def write_npz(path: Path, seed: int = 0) -> Path:
    """Seeded 3-channel 28x28 images of 7 classes: a class template plus noise, uint8 (n, H, W, C)."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, (N_CLASSES, SIDE, SIDE, 3))

    def split(n):
        y = np.arange(n) % N_CLASSES
        x = 127 + 0.3 * (templates[y] - 127) + rng.normal(0, 70, (n, SIDE, SIDE, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    (xtr, ytr), (xte, yte) = split(N_TRAIN), split(N_TEST)
    names = np.array([f"shape{k}" for k in range(N_CLASSES)])
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, class_names=names)
    return path


def config(tmp: Path, **over) -> Path:
    plugins = copy_plugins(tmp / "plugins")
    nets = shutil.copy(NETS, tmp / "plugins" / NETS.name)
    bad = shutil.copy(NETS.parent / "bad.py", tmp / "plugins" / "bad.py")
    readme = tmp / "plugins" / "my_method.py"  # the README's first code block, as a user copies it
    blocks = [b.split("```", 1)[0] for b in (ROOT / "README.md").read_text().split("```python\n")[1:]]
    readme.write_text(next(b for b in blocks if "from umia.plugins import method" in b))
    cfg = {
        "experiment": "own",
        "results_dir": str(tmp / "results"),
        "device": "cpu",
        "dataset": {"name": "npz", "path": str(write_npz(tmp / "shapes.npz"))},
        "n_models": 16,
        "shard_size": 16,
        "candidates": {"mode": "random", "size": 40},
        "network": f"{nets}:TinyNet",
        "train": {"epochs": 20, "batch_size": 32, "lr": 0.05, "width": 8},
        # nan_weights leaves non-finite weights: recorded as diverged, as a built-in method would be
        "methods": ["finetune", f"{plugins['ssd']}:ssd", f"{bad}:nan_weights", f"{readme}:my_ascent@lr=0.01"],
        "attacks": {"n_folds": 4, "n_bootstrap": 20},
        "keep_checkpoints": False,
        **over,
    }
    path = tmp / "own.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def own_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("own")
    snakemake("--configfile", str(config(tmp)))
    return tmp / "results" / "own"


def test_own_data_network_and_method(own_run):
    summary = pd.read_csv(own_run / "tables/summary.csv")
    assert {"none", "retrain", "finetune", "ssd", "nan_weights", "my_ascent@lr=0.01"} == set(summary.method)
    assert (summary[summary.method == "nan_weights"].diverged_models == 16).all()
    assert (summary[summary.method != "nan_weights"].diverged_models == 0).all()
    s = summary.set_index(["method", "attack"])
    assert s.loc[("none", "ulira"), "accuracy"] > 0.55
    assert abs(s.loc[("retrain", "ulira"), "accuracy"] - 0.5) < 0.08
    scores = pd.read_parquet(own_run / "scores", columns=["method", "label", "split", "phi"])
    ok = scores[scores.method != "nan_weights"]
    assert set(ok.label) == set(range(N_CLASSES)) and np.isfinite(ok.phi).all()
    assert (scores.split == "pool").sum() == 6 * 16 * 2 * N_TRAIN  # 6 methods, 16 models, 2 views
    examples = pd.read_parquet(own_run / "plan/examples.parquet")
    assert set(examples.label_name) <= {f"shape{k}" for k in range(N_CLASSES)}
    assert examples[["height", "width", "channels"]].eq([SIDE, SIDE, 3]).all().all()
    for stem in ("attack_accuracy", "roc", "per_example_accuracy", "protected_examples", "rates"):
        assert (own_run / f"figures/{stem}.png").stat().st_size > 5000
    assert not (own_run / "figures/per_example_stop.png").exists()  # that method is not configured
    page = (own_run / "report/summary.html").read_text()
    assert "TinyNet" in page and "ssd" in page


def test_wrong_network_output_stops_before_any_job(tmp_path):
    cfg = config(tmp_path)
    body = yaml.safe_load(cfg.read_text())
    body["network"] = body["network"].replace(":TinyNet", ":wrong_shape")
    cfg.write_text(yaml.safe_dump(body))
    proc = snakemake("--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("umia: ")]
    assert any("must return logits of shape (batch, 7)" in ln for ln in lines), proc.stderr[-2000:]
    assert not (tmp_path / "results").exists()  # the network was tried on the CPU before any job


def test_a_plugin_that_raises_stops_its_job_with_its_traceback_logged(own_run):
    tmp = own_run.parent.parent  # the finished run's folder: only the new method's job runs
    cfg = yaml.safe_load((tmp / "own.yaml").read_text())
    cfg["methods"] = [f"{tmp / 'plugins' / 'bad.py'}:raises"]
    path = tmp / "raises.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake("--configfile", str(path), check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("umia: method")]
    assert lines and "raised RuntimeError on model 0: the plug-in's own bug" in lines[0], proc.stderr[-3000:]
    log = (own_run / "logs/unlearn/raises-shard-000.log").read_text()
    assert "Traceback" in log and 'raise RuntimeError("the plug-in\'s own bug")' in log
    assert "rule train_original" not in proc.stdout + proc.stderr  # nothing finished was redone
    assert not (own_run / "shards/unlearned/raises").exists() or not any(
        (own_run / "shards/unlearned/raises").iterdir()
    )
    assert (own_run / "tables/summary.csv").exists()  # and nothing finished is lost
