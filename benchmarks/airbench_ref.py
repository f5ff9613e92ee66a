"""The reference for fastcnn's speed: airbench94 (K. Jordan; PyPI ``airbench``, 0.1.8) trained on
25k halves of CIFAR-10 (the same halves train_speed.py uses: plan.train_mask, seed 0) with its
own recipe, timed the way train_speed.py times ours (network built, whitening initialised and
trained, CUDA synchronised; evaluation excluded), after one warm-up training; interleaved, half by
half, with our fastcnn recipes (the config's, or --variant ones), so that both see the same state
of the card.

``--synthetic`` writes random images and labels of CIFAR-10's shapes instead of reading --data:
for timing where the real data cannot be had (accuracies are then chance).

usage: python benchmarks/airbench_ref.py (--data cifar10.npz | --synthetic) [--repeats 4] [--full]
       [--config config/cifar10.yaml] [--variant NAME:key=value,... ...] [--no-ours]

Accuracy is reported plain, with mirror TTA (the mean logits of the image and its mirror image;
the two views our attacks score) and, for airbench, with its default TTA (mirror + two
translations). airbench reads cifar10/{train,test}.pt under the working directory; they are
written to a temporary directory from the .npz.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from umia import plan
from umia.config import load_schema, resolve
from umia.entries import scalar
from umia.tasks.image.data import prepare
from umia.tasks.image.recipe import Recipe, fit
from umia.tasks.image.task import ImageTask, test_accuracy

ROOT = Path(__file__).resolve().parents[1]


def our_recipes(config: str, variants: list[str], data: str) -> tuple[dict, list[tuple[str, Recipe]]]:
    cfg = yaml.safe_load(open(config))
    cfg.setdefault("dataset", {})["path"] = data
    cfg = resolve(cfg, load_schema(ROOT / "workflow/schemas/config.schema.yaml"))
    runs = [] if variants else [("ours", Recipe.from_mapping(cfg["train"]))]
    for spec in variants:
        name, _, rest = spec.partition(":")
        recipe = dict(cfg["train"])
        for item in filter(None, rest.split(",")):
            k, _, v = item.partition("=")
            recipe[k] = None if v == "null" else scalar(v)
        runs.append((name, Recipe.from_mapping(recipe)))
    return cfg, runs


def with_width(task: ImageTask, width: int) -> ImageTask:
    """The task building fastcnns of another width: the same data on the device (a shallow copy)."""
    other = copy.copy(task)
    other.width = width
    return other


def synthetic_cifar(folder: str) -> str:
    """A .npz of uniform random uint8 images and labels with CIFAR-10's shapes; returns its path."""
    rng = np.random.default_rng(0)
    path = f"{folder}/synthetic-cifar10.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, 50_000).astype(np.int64),
        x_test=rng.integers(0, 256, (10_000, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, 10_000).astype(np.int64),
    )
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", help="cifar10 .npz (x_train, y_train, x_test, y_test)")
    ap.add_argument("--synthetic", action="store_true", help="time on random data of CIFAR-10's shapes")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="also time one run on the full 50k")
    ap.add_argument("--config", default=str(ROOT / "config/cifar10.yaml"))
    ap.add_argument("--variant", action="append", default=[], help="NAME:key=value,... (repeatable)")
    ap.add_argument("--no-ours", action="store_true", help="time airbench only")
    args = ap.parse_args()
    if args.synthetic:
        args.data = synthetic_cifar(tempfile.mkdtemp())
    elif not args.data:
        ap.error("give --data cifar10.npz or --synthetic")
    args.data = os.path.abspath(args.data)
    bench, ours = None, []
    if not args.no_ours:
        cfg, ours = our_recipes(args.config, args.variant, args.data)
        with tempfile.TemporaryDirectory() as t:
            prepare(cfg["dataset"], cfg["seed"], f"{t}/data.npz")
            bench = ImageTask(f"{t}/data.npz", None, "cuda", None, network="fastcnn")
    z = np.load(args.data)
    tmp = tempfile.mkdtemp()
    os.makedirs(f"{tmp}/cifar10")
    classes = [str(i) for i in range(10)]
    for split in ("train", "test"):
        torch.save(
            {
                "images": torch.from_numpy(z[f"x_{split}"]),
                "labels": torch.from_numpy(z[f"y_{split}"].astype(np.int64)),
                "classes": classes,
            },
            f"{tmp}/cifar10/{split}.pt",
        )
    os.chdir(tmp)
    import airbench
    from airbench import lib_airbench94 as ab94

    test_loader = airbench.CifarLoader("cifar10", train=False, batch_size=2000)
    n_pool = len(z["y_train"])
    print(f"device: {torch.cuda.get_device_name()}; airbench {getattr(airbench, '__version__', '0.1.8')}")
    rows: dict[str, list] = {}

    def record(label, r, n, t, accs):
        tag = "warm-up" if r == 0 else "timed"
        more = f"  airbench-TTA {accs[2]:.4f}" if len(accs) > 2 else ""
        print(
            f"{label:12s} {tag:7s} run {r} n={n} train {t:6.3f} s  "
            f"test acc {accs[0]:.4f}  mirror-TTA {accs[1]:.4f}{more}",
            flush=True,
        )
        if isinstance(r, int) and r > 0:
            rows.setdefault(label, []).append((t, *accs))

    runs = [(r, plan.train_mask(args.seed, r, n_pool)) for r in range(args.repeats + 1)]
    if args.full:
        runs.append(("full", np.ones(n_pool, bool)))
    for r, mask in runs:
        loader = airbench.CifarLoader(
            "cifar10", train=True, batch_size=ab94.hyp["opt"]["batch_size"], aug=ab94.hyp["aug"], altflip=True
        )
        idx = torch.from_numpy(np.flatnonzero(mask)).to(loader.images.device)
        loader.images, loader.labels = loader.images[idx], loader.labels[idx]
        torch.manual_seed(1000 + (r if isinstance(r, int) else 99))
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        model = ab94.train94(loader, verbose=False)
        torch.cuda.synchronize()
        t = time.perf_counter() - t0
        record("airbench94", r, len(idx), t, [airbench.evaluate(model, test_loader, tta_level=k) for k in (0, 1, 2)])
        del model
        if not isinstance(r, int):
            continue
        for label, rec in ours:
            task = with_width(bench, rec.width)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            keep = torch.from_numpy(plan.train_mask(args.seed, r, n_pool)).to(task.device)
            x, y = task.pool(keep)
            net = task.new_model(plan.derive_seed(args.seed, "init", r), x)
            fit(task, net, x, y, rec, task.generator(r))
            torch.cuda.synchronize()
            t = time.perf_counter() - t0
            record(label, r, len(y), t, [test_accuracy(task, net), test_accuracy(task, net, tta=True)])
    print(f"\n25k halves, mean over {args.repeats} models after a warm-up, {torch.cuda.get_device_name()}")
    print("recipe        train s/model  x airbench94  test acc  mirror-TTA acc  (airbench-TTA)")
    ref = statistics.mean(t[0] for t in rows["airbench94"])
    for label, sel in rows.items():
        m = [statistics.mean(c) for c in zip(*sel, strict=True)]
        more = f"  ({m[3]:.4f})" if len(m) > 3 else ""
        print(f"{label:12s}  {m[0]:13.3f}  {m[0] / ref:12.3f}  {m[1]:8.4f}  {m[2]:14.4f}{more}")


if __name__ == "__main__":
    main()
