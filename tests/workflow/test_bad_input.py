"""Bad input stops with one clear line before any damage. Each case below is listed, with the
line the user sees, in docs/troubleshooting.md's table (`python -m tests.workflow.test_bad_input`
prints that table).

Config problems stop while Snakemake reads the workflow (no job runs, nothing is written); data
problems stop the first job that reads the data, with nothing else run; a table from another
config and a full disk are checked in tests/unit (test_io.py, test_pipeline_errors.py).
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests/workflow/tiny.yaml"
PLUGINS = "tests/workflow/plugins"  # bad plug-ins, each breaking the contract in its own way


def _npz(tmp: Path, drop: str | None = None, bad_label: bool = False) -> Path:
    """A small generic .npz dataset (3 channels, 12x12, 3 classes), one array left out or a label wrong."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 255, (60, 12, 12, 3), dtype=np.uint8),
        "y_train": np.arange(60) % 3,
        "x_test": rng.integers(0, 255, (30, 12, 12, 3), dtype=np.uint8),
        "y_test": np.arange(30) % 3,
    }
    if bad_label:
        arrays["y_test"][0] = -1
    arrays.pop(drop, None)
    np.savez(tmp / "own.npz", **arrays)
    return tmp / "own.npz"


def _folder(tmp: Path, empty: str | None = None, odd_size: bool = False) -> Path:
    """An image tree train/<class>/*.png, test/<class>/*.png of 8x8 grey images; one class folder
    left empty, or one image of another size."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("test", 6)):
        for cls in ("ant", "bee", "cat"):
            d = tmp / "tree" / split / cls
            d.mkdir(parents=True)
            if cls == empty:
                continue
            for i in range(n):
                side = 9 if odd_size and split == "train" and cls == "bee" and i == 3 else 8
                Image.fromarray(rng.integers(0, 255, (side, side), dtype=np.uint8)).save(d / f"{i:03d}.png")
    return tmp / "tree"


# (what is wrong, config lines, text the one line must contain)
CONFIG_CASES = [
    ("malformed YAML", "n_models: [1,\n  foo", "Config file is not valid JSON or YAML"),
    ("unknown key", "n_model: 16", "unknown key 'n_model'; did you mean 'n_models'?"),
    ("n_models not a number", "n_models: many", "config key 'n_models': 'many' is not a whole number; write one"),
    ("n_models odd", "n_models: 7", "config key 'n_models': 7 is odd"),
    ("n_models too small", "n_models: 2", "config key 'n_models': 2 out of range; it must be >= 4"),
    ("n_models not a multiple of shard_size", "n_models: 20", "is not a multiple of shard_size=16"),
    ("shard_size zero", "shard_size: 0", "config key 'shard_size': 0 out of range"),
    ("negative seed", "seed: -1", "config key 'seed': -1 out of range"),
    ("unknown dataset", "dataset: {name: imagenet}", "config key 'dataset.name': 'imagenet' is not one of"),
    (
        "test_fraction out of range",
        "dataset: {test_fraction: 1.5}",
        "config key 'dataset.test_fraction': 1.5 out of range",
    ),
    (
        "missing data path",
        "dataset: {name: cifar10, path: /no/such/cifar10.npz}",
        "config key 'dataset.path': /no/such",
    ),
    (
        "checksum without a file",
        "dataset: {name: cifar10, sha256: " + "ab" * 32 + "}",
        "'dataset.sha256': a checksum needs",
    ),
    ("malformed checksum", "dataset: {sha256: xyz}", "config key 'dataset.sha256': 'xyz'"),
    ("text without its data", "dataset: {name: imdb}", "config key 'dataset.path': imdb has no download"),
    (
        "an image method for text",
        "dataset: {name: imdb, path: tests/workflow/tiny_text.yaml}\nnetwork: gpt2\nviews: [identity]",
        "config key 'methods': 'random_labels' does not apply to imdb",
    ),
    ("unknown network", "network: vit", "config key 'network': 'vit' is not one of"),
    ("network for another image size", "network: fastcnn", "'fastcnn' does not fit dataset 'digits'"),
    ("unknown method", "methods: [unlearn_magic]", "unknown method 'unlearn_magic'"),
    ("a control listed as a method", "methods: [none]", "'none' is a control and always runs"),
    ("malformed method override", "methods: ['finetune@lr']", "has a malformed override 'lr'"),
    ("override of a missing setting", "methods: ['finetune@foo=1']", "sets 'foo', which finetune does not have"),
    ("override out of range", "methods: ['finetune@lr=-1']", "'finetune@lr=-1' setting 'lr': -1 out of range"),
    ("learning rate zero", "train: {lr: 0}", "config key 'train.lr': 0 out of range; it must be > 0"),
    ("negative epochs", "train: {epochs: -1}", "config key 'train.epochs': -1 out of range"),
    ("batch size zero", "train: {batch_size: 0}", "config key 'train.batch_size': 0 out of range"),
    ("momentum of 1 or more", "train: {momentum: 1.5}", "config key 'train.momentum': 1.5 out of range"),
    ("label smoothing of 1", "train: {label_smoothing: 1}", "config key 'train.label_smoothing': 1 out of range"),
    ("more candidates than the pool", "candidates: {size: 100000}", "config key 'candidates.size': 100000 candidates"),
    ("too few candidates", "candidates: {size: 1}", "config key 'candidates.size': 1 out of range"),
    ("class that does not exist", "candidates: {mode: class, class: 12}", "'candidates.class': 12 is not a class"),
    ("unknown view", "views: [rotate]", "config key 'views.0': 'rotate' is not one of"),
    ("unknown device", "device: tpu", "config key 'device': 'tpu' is not one of"),
    ("one attack fold", "attacks: {n_folds: 1}", "config key 'attacks.n_folds': 1 out of range"),
    ("more folds than model pairs", "attacks: {n_folds: 9}", "9 folds need n_models >= 18"),
    (
        "unwritable results folder",
        "results_dir: /etc/hostname/results",
        "config key 'results_dir': /etc/hostname/results",
    ),
    # your own method, network or data (docs/own-method.md)
    (
        "plug-in file that does not import",
        f"methods: ['{PLUGINS}/broken.py:method']",
        "broken.py does not import (ModuleNotFoundError: No module named 'no_such_module_for_umia_tests')",
    ),
    (
        "plug-in module that does not import",
        "methods: ['no_such_lab.forget:fn']",
        "module 'no_such_lab.forget' does not import",
    ),
    ("plug-in file that does not exist", "methods: ['my_methods.py:fn']", "file my_methods.py does not exist"),
    ("plug-in function that does not exist", "methods: ['examples/ssd.py:sdd']", "examples/ssd.py has no 'sdd'"),
    (
        "plug-in name that is not callable",
        f"methods: ['{PLUGINS}/bad.py:not_callable']",
        "not_callable is of type int, not a callable",
    ),
    (
        "plug-in with another signature",
        f"methods: ['{PLUGINS}/bad.py:wrong_args']",
        "takes (model, forget) but a method takes (ctx, model, forget, retain, s, gen)",
    ),
    (
        "plug-in setting it does not declare",
        "methods: ['examples/ssd.py:ssd@beta=2']",
        "sets 'beta', which examples/ssd.py:ssd does not have; it has alpha, batch_size, lam",
    ),
    ("plug-in setting out of range", "methods: ['examples/ssd.py:ssd@alpha=-1']", "setting 'alpha': -1 out of range"),
    (
        "plug-in setting of the wrong type",
        "methods: ['examples/ssd.py:ssd@batch_size=2.5']",
        "setting 'batch_size': 2.5 must be of type integer",
    ),
    (
        "plug-in setting under unlearn it does not declare",
        "methods: ['examples/ssd.py:ssd']\nunlearn: {ssd: {beta: 5}}",
        "config key 'unlearn.ssd': sets 'beta', which examples/ssd.py:ssd does not have; it has alpha, batch_size, lam",
    ),
    (
        "settings under unlearn for a method the config does not run",
        "unlearn: {ssd: {alpha: 5}}",
        "unknown key 'unlearn.ssd'; known keys here: finetune,",
    ),
    (
        "tuning grid for a setting the method lacks",
        "tune: {finetune: {momentum: [0.9]}}",
        "which finetune does not have",
    ),
    ("tuning grid that is empty", "tune: {finetune: {}}", "config key 'tune.finetune': the grid is empty"),
    ("tuning grid with no values", "tune: {finetune: {lr: []}}", "config key 'tune.finetune.lr': the grid is empty"),
    (
        "tuning grid value out of range",
        "tune: {finetune: {lr: [0.1, -1]}}",
        "'finetune@lr=-1' setting 'lr': -1 out of range",
    ),
    (
        "tuning grid for a method not in methods",
        "methods: [finetune]\ntune: {scrub: {lr: [0.1]}}",
        "'scrub' is not an entry of methods (without @)",
    ),
    ("tuning guard negative", "tuning: {max_test_drop: -0.01}", "'tuning.max_test_drop': -0.01 out of range"),
    (
        "tuning by the challenge's score on too few models",
        "tune: {finetune: {lr: [0.1]}}\ntuning: {rule: challenge, n_models: 4}",
        "too few for its epsilon buckets; raise it to at least 8",
    ),
    ("tuning rule unknown", "tuning: {rule: best}", "'tuning.rule': 'best' is not one of: population_loss"),
    ("plug-in with a built-in's name", f"methods: ['{PLUGINS}/bad.py:finetune']", "has the name of a built-in method"),
    ("plug-in network that does not exist", f"network: '{PLUGINS}/nets.py:NoNet'", "nets.py has no 'NoNet'"),
    ("npz without its path", "dataset: {name: npz}", "dataset 'npz' is read from a local file; set dataset.path"),
    (
        "npz with missing arrays",
        lambda t: f"dataset: {{name: npz, path: {_npz(t, drop='y_test')}}}",
        "lacks array(s) y_test",
    ),
    (
        "npz with labels out of range",
        lambda t: f"dataset: {{name: npz, path: {_npz(t, bad_label=True)}}}",
        "holds label -1",
    ),
    (
        "image folder with an empty class",
        lambda t: f"dataset: {{name: folder, path: {_folder(t, empty='cat')}}}",
        "class folder holds no images",
    ),
]


def _snakemake(tmp: Path, body: str, *args: str) -> subprocess.CompletedProcess:
    cfg = tmp / "bad.yaml"
    cfg.write_text(f"results_dir: {tmp / 'results'}\n{body}\n" if "results_dir" not in body else body + "\n")
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", str(TINY), str(cfg), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def _message(proc: subprocess.CompletedProcess, needle: str) -> str:
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if needle in ln]
    assert lines, f"no line contains {needle!r}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return lines[0].strip()


@pytest.mark.parametrize("what, body, needle", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_stops_with_one_line_before_any_job(tmp_path, what, body, needle):
    proc = _snakemake(tmp_path, body(tmp_path) if callable(body) else body)
    assert proc.returncode != 0
    line = _message(proc, needle)
    assert "\n" not in line and len(line) < 300
    assert not (tmp_path / "results").exists(), "a job ran"
    assert "Traceback" not in proc.stderr


def test_a_changed_config_never_replaces_a_finished_study(tmp_path):
    """A study's results folder, then a run whose result-defining config differs (--config, as a
    user tries a change): it stops before any job with one line naming the key and the ways on, and
    the finished tables are untouched; growing the study, or asking to overwrite, goes on."""
    candidates = tmp_path / "results/tiny/plan/candidates.parquet"
    (tmp_path / "study.yaml").write_text(f"results_dir: {tmp_path / 'results'}\n")
    cmd = [sys.executable, "-m", "snakemake", str(candidates), "--cores", "2", "--configfile", str(TINY)]
    subprocess.run([*cmd, str(tmp_path / "study.yaml")], cwd=ROOT, check=True, capture_output=True, timeout=300)
    assert candidates.exists() and (tmp_path / "results/tiny/.umia-study.json").exists()
    before = candidates.stat().st_mtime_ns
    proc = _snakemake(tmp_path, "", "-n", "--config", "train={'epochs': 3}")
    assert proc.returncode != 0
    line = _message(proc, "holds a finished study computed with another config (train.epochs")
    assert "\n" not in line and "-> 3)" in line and "--config overwrite=true" in line
    assert "Traceback" not in proc.stderr and candidates.stat().st_mtime_ns == before
    grown = _snakemake(tmp_path, "n_models: 32", "-n")  # more models: the same study, grown
    assert grown.returncode == 0, grown.stderr[-2000:]
    replaced = _snakemake(tmp_path, "", "-n", "--config", "train={'epochs': 3}", "overwrite=true")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert "train_original" in replaced.stdout + replaced.stderr  # the models are to be made anew


def _truncated_npz(tmp: Path) -> Path:
    good = tmp / "good.npz"
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (200, 32, 32, 3), dtype=np.uint8)
    np.savez(good, x_train=x, y_train=np.arange(200) % 10, x_test=x[:50], y_test=np.arange(50) % 10)
    bad = tmp / "cifar10.npz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return bad


def _truncated_idx(tmp: Path) -> Path:
    folder = tmp / "fmnist"
    folder.mkdir()
    for stem, shape in (
        ("train-images-idx3-ubyte", (60, 28, 28)),
        ("t10k-images-idx3-ubyte", (10, 28, 28)),
        ("train-labels-idx1-ubyte", (60,)),
        ("t10k-labels-idx1-ubyte", (10,)),
    ):
        header = bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)
        body = bytes(int(np.prod(shape)))
        if stem.startswith("train-images"):
            body = body[:100]  # truncated
        with gzip.open(folder / f"{stem}.gz", "wb") as f:
            f.write(header + body)
    return folder


DATA_CASES = [
    (
        "truncated CIFAR-10 .npz",
        lambda t: f"dataset: {{name: cifar10, path: {_truncated_npz(t)}}}\nnetwork: fastcnn\ncandidates: {{size: 20}}",
        "not a readable .npz",
    ),
    (
        "truncated Fashion-MNIST idx file",
        lambda t: (
            f"dataset: {{name: fashion_mnist, path: {_truncated_idx(t)}}}\nnetwork: cnn\ncandidates: {{size: 20}}"
        ),
        "it is truncated, fetch it again",
    ),
    (
        "checksum mismatch",
        lambda t: (
            f"dataset: {{name: cifar10, path: {_truncated_npz(t)}, sha256: {'ab' * 32}}}\n"
            "network: fastcnn\ncandidates: {size: 20}"
        ),
        "does not match dataset.sha256",
    ),
    ("no GPU for device: cuda", lambda t: "device: cuda", "'device' is 'cuda' but no GPU is visible"),
    (
        "image folder with mixed image sizes",
        lambda t: f"dataset: {{name: folder, path: {_folder(t, odd_size=True)}}}\ncandidates: {{size: 10}}",
        "all images need one size and channel count",
    ),
]


@pytest.mark.parametrize("what, body, needle", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_bad_data_stops_the_first_job_with_one_line(tmp_path, what, body, needle):
    proc = _snakemake(tmp_path, body(tmp_path))
    assert proc.returncode != 0
    line = _message(proc, needle)
    assert line.startswith("umia: ") and len(line) < 300
    # nothing downstream ran: no shard, no table
    assert not list((tmp_path / "results").rglob("shards/*/*/*.parquet"))
    assert not list((tmp_path / "results").rglob("tables/*"))
    assert "Traceback" not in proc.stderr


if __name__ == "__main__":  # print docs/troubleshooting.md's table
    import tempfile

    print("| bad input | what you see |\n| --- | --- |")
    for what, body, needle in CONFIG_CASES + DATA_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            proc = _snakemake(tmp, body(tmp) if callable(body) else body)
            line = _message(proc, needle).replace(str(tmp), "…").replace("|", "\\|")
            print(f"| {what} | `{line}` |")
