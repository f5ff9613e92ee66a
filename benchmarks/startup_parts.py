"""Where a model job's start-up goes, part by part: imports, CUDA start, the data on the device,
the first model (cuDNN autotuning and first-call work included) against the next ones, and the
first scoring against the next (groundwork of the "every GPU busy" issue: 13-23 s a job today).

    python benchmarks/startup_parts.py --config config/cifar10.yaml --dataset-path cifar10.npz [--models 3]

It prepares the data and candidates as the workflow's first jobs would (into --work), then times
one training job's steps in this process, as umia.jobs.train_shard runs them.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/cifar10.yaml")
    ap.add_argument("--dataset-path", required=True)
    ap.add_argument("--work", default="/tmp/umia-startup")
    ap.add_argument("--models", type=int, default=3)
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    cfg["dataset"]["path"] = args.dataset_path
    work = Path(args.work)
    parts = {}

    t = time.perf_counter()
    import torch

    parts["import torch"] = time.perf_counter() - t
    t = time.perf_counter()
    from umia import pipeline, tasks  # noqa: F401  (what a job script imports)
    from umia.jobs import train_shard  # noqa: F401

    parts["import umia (jobs, tasks, pipeline)"] = time.perf_counter() - t
    data, cand = str(work / "dataset.npz"), str(work / "candidates.parquet")
    if not Path(data).exists():
        t = time.perf_counter()
        pipeline.prepare_data({**cfg["dataset"], "test_fraction": 0.25}, cfg["seed"], data)
        pipeline.write_candidates(data=data, out=cand, candidates=cfg["candidates"], seed=cfg["seed"], config_hash="x")
        print(f"(prepared the data once: {time.perf_counter() - t:.1f} s, not part of a job)")
    t = time.perf_counter()
    torch.cuda.init()
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    parts["CUDA start (context)"] = time.perf_counter() - t
    t = time.perf_counter()
    task = tasks.build(
        "image",
        data=data,
        candidates=cand,
        device="cuda",
        config_hash="x",
        network=cfg["network"],
        width=cfg["train"]["width"],
        views=cfg["views"],
    )
    torch.cuda.synchronize()
    parts["data to the device, normalised"] = time.perf_counter() - t
    keep = {i: task.masks(cfg["seed"], i)[0] for i in range(args.models)}
    times, scores = [], []
    t = time.perf_counter()
    for _, model, _ in task.train(keep, cfg["train"], cfg["seed"]):
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        task.score(model)
        torch.cuda.synchronize()
        scores.append(time.perf_counter() - t)
        t = time.perf_counter()
    steady, steady_score = min(times[1:]), min(scores[1:])
    parts["first model, beyond a steady one (cuDNN tuning, first calls)"] = times[0] - steady
    parts["first scoring, beyond a steady one"] = scores[0] - steady_score
    print(f"process start to the first line of this script: see `time python3 -c pass` ({T0:.2f} s of perf_counter)")
    print(f"{'part':<62} {'s':>7}")
    for k, v in parts.items():
        print(f"{k:<62} {v:7.2f}")
    print(f"{'start-up in all (the parts above)':<62} {sum(parts.values()):7.2f}")
    every = [round(x, 2) for x in times]
    print(f"steady model: training {steady:.2f} s, scoring {steady_score:.2f} s; all models: {every}")
    print(torch.cuda.get_device_name(), torch.__version__)


if __name__ == "__main__":
    main()
