"""Per-model training time and test accuracy of each network on a half of the pool (25k for
CIFAR-10), with the recipe of a config file; the same code path as the workflow's shard jobs.

usage: python benchmarks/train_speed.py CONFIG.yaml [--data cifar10.npz] [--networks fastcnn resnet18]
       [--repeats 2] [--variant NAME:key=value,key=value ...]

Each network (or each --variant of the config's recipe, keys of the `train` section) trains
1 + repeats models on different halves with different seeds; the first one of each is the warm-up
(cuDNN autotuning) and is reported apart. Accuracy is reported plain and with
mirror test-time augmentation (the mean logits of the image and its mirror image).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import torch
import yaml

from umia import plan
from umia.config import load_schema, resolve
from umia.entries import scalar
from umia.tasks.image.data import prepare
from umia.tasks.image.task import ImageTask, Recipe, fit, test_accuracy

ROOT = Path(__file__).resolve().parents[1]
# Recipes for the networks a config does not train (the cifar10 config's commented ResNet-18 one).
RESNET18 = dict(
    epochs=18,
    batch_size=512,
    lr=0.2,
    momentum=0.9,
    weight_decay=5e-4,
    label_smoothing=0.1,
    warmup=0.15,
    flip=True,
    translate=4,
    width=64,
)


def with_network(task: ImageTask, network: str, width: int) -> ImageTask:
    """The task building another network or width: the same data on the device (a shallow copy)."""
    other = copy.copy(task)
    other.network, other.width = network, width
    return other


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--data", help="local dataset copy (cifar10 .npz or Fashion-MNIST idx folder)")
    ap.add_argument(
        "--networks", nargs="*", default=None, help="networks to time with their recipes (none: only the variants)"
    )
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    ap.add_argument("--epochs", type=float, default=None, help="override the recipe's epochs")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:key=value,... a recipe variant of the config's network (repeatable)",
    )
    args = ap.parse_args()
    cfg = yaml.safe_load(open(args.config))
    if args.device:
        cfg["device"] = args.device
    if args.data:
        cfg.setdefault("dataset", {})["path"] = args.data
    cfg = resolve(cfg, load_schema(ROOT / "workflow/schemas/config.schema.yaml"))
    with tempfile.TemporaryDirectory() as tmp:
        prepare(cfg["dataset"], cfg["seed"], f"{tmp}/data.npz")
        bench = ImageTask(
            f"{tmp}/data.npz", None, cfg["device"], None, network=cfg["network"], width=cfg["train"]["width"],
            views=cfg["views"],
        )  # fmt: skip
    dev = torch.cuda.get_device_name() if bench.device.type == "cuda" else "cpu"
    print(f"device: {dev}; pool {bench.n_pool}, test {bench.n_test}")
    runs = []  # (label, network, recipe)
    for net in [cfg["network"]] if args.networks is None else args.networks:
        recipe = dict(cfg["train"]) if net == cfg["network"] else dict(RESNET18)
        if args.epochs:
            recipe["epochs"] = args.epochs
        runs.append((net, net, recipe))
    for spec in args.variant:
        name, _, rest = spec.partition(":")
        recipe = dict(cfg["train"])
        for item in filter(None, rest.split(",")):
            k, _, v = item.partition("=")
            recipe[k] = None if v == "null" else scalar(v)
        runs.append((name, cfg["network"], recipe))
    rows, first = [], {}
    for label, net, recipe in runs:
        rec = Recipe.from_mapping(recipe)
        task = with_network(bench, net, rec.width)
        for r in range(args.repeats + 1):  # the first run warms up (cuDNN autotuning, allocator)
            train, _ = task.masks(cfg["seed"], r)
            x, y = task.pool(train)
            if task.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model = task.new_model(plan.derive_seed(cfg["seed"], "init", r), x)
            fit(task, model, x, y, rec, task.generator(r))
            if task.device.type == "cuda":
                torch.cuda.synchronize()
            t_train = time.perf_counter() - t0
            acc, acc_tta = test_accuracy(task, model), test_accuracy(task, model, tta=True)
            t0 = time.perf_counter()
            task.score(model)
            t_score = time.perf_counter() - t0
            tag = "warm-up" if r == 0 else "timed"
            print(
                f"{label:12s} {tag:7s} n={len(y)} train {t_train:6.3f} s  "
                f"test acc {acc:.4f}  mirror-TTA {acc_tta:.4f}  "
                f"score {bench.n_pool + bench.n_test}x{len(cfg['views'])} {t_score:5.2f} s",
                flush=True,
            )
            if r:
                rows.append((label, t_train, acc, acc_tta, t_score))
            else:
                first[label] = t_train
    print(f"\nvariant       train s/model  first model s  test acc  mirror-TTA acc  score s/model  ({dev})")
    for label in dict.fromkeys(r[0] for r in rows):
        sel = [r for r in rows if r[0] == label]
        t_train, acc, acc_tta, t_score = (sum(r[k] for r in sel) / len(sel) for k in (1, 2, 3, 4))
        print(f"{label:12s}  {t_train:13.3f}  {first[label]:13.2f}  {acc:8.4f}  {acc_tta:14.4f}  {t_score:13.2f}")
    for label, _, recipe in runs:
        print(f"{label}: {recipe}")


if __name__ == "__main__":
    main()
