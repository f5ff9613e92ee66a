"""Where a model job's start-up goes, part by part: imports, CUDA start, the data on the device,
the first model (cuDNN autotuning and first-call work included) against the next ones, and the
first scoring against the next (groundwork of the "every GPU busy" issue: 13-23 s a job today).

    python benchmarks/startup_parts.py --config config/cifar10.yaml --dataset-path cifar10.npz [--models 3]

It prepares the data and candidates as the workflow's first jobs would (into --work), then times
one training job's steps in this process, as umia.stages.shards.train_shard runs them.
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
    ap.add_argument(
        "--cudnn", choices=["benchmark", "heuristic"], default=None,
        help="override umia.runtime.device's choice: cuDNN's autotuner, or its heuristics (no autotuning)",
    )  # fmt: skip
    ap.add_argument("--epochs", type=float, default=None, help="override the recipe's epochs (a quick check)")
    ap.add_argument(
        "--unlearn", default="", help="methods of the config (comma-separated) to time per model after training"
    )
    ap.add_argument(
        "--profile-first", action="store_true",
        help="torch.profiler over the first model's training: the ops that take its extra seconds",
    )  # fmt: skip
    args = ap.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    cfg["dataset"]["path"] = args.dataset_path
    if args.epochs is not None:
        cfg["train"]["epochs"] = args.epochs
    work = Path(args.work)
    parts = {}

    t = time.perf_counter()
    import torch

    parts["import torch"] = time.perf_counter() - t
    t = time.perf_counter()
    from umia import tasks  # noqa: F401  (what a job script imports)
    from umia.stages.shards import train_shard  # noqa: F401
    from umia.tasks.image import task as image  # noqa: F401

    parts["import umia (jobs, the image task)"] = time.perf_counter() - t
    from umia.stages import prepare as pipeline

    data, cand = str(work / "dataset.npz"), str(work / "candidates.parquet")
    if not Path(data).exists():
        t = time.perf_counter()
        pipeline.prepare_data({**cfg["dataset"], "test_fraction": 0.25}, cfg["seed"], data)
        pipeline.write_candidates(data=data, out=cand, candidates=cfg["candidates"], seed=cfg["seed"], config_hash="x")
        print(f"(prepared the data once: {time.perf_counter() - t:.1f} s, not part of a job)")
    t = time.perf_counter()
    dev = "cuda" if torch.cuda.is_available() else "cpu"  # the CPU: a check of this script only
    sync = torch.cuda.synchronize if dev == "cuda" else lambda: None
    torch.zeros(1, device=dev)
    sync()
    parts["CUDA start (context)"] = time.perf_counter() - t
    t = time.perf_counter()
    task = tasks.build(
        "image",
        data=data,
        candidates=cand,
        device=dev,
        config_hash="x",
        network=cfg["network"],
        width=cfg["train"]["width"],
        views=cfg["views"],
    )
    sync()
    parts["data to the device, normalised"] = time.perf_counter() - t
    if args.cudnn:
        torch.backends.cudnn.benchmark = args.cudnn == "benchmark"
    keep = {i: task.masks(cfg["seed"], i)[0] for i in range(args.models)}
    times, scores = [], []
    t = time.perf_counter()
    models_kept = {}
    prof = None
    if args.profile_first:
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
        prof = profile(activities=acts)
        prof.__enter__()
    for model_id, model, _ in task.train(keep, cfg["train"], cfg["seed"]):
        sync()
        models_kept[model_id] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        times.append(time.perf_counter() - t)
        if prof is not None:  # the first model's time includes the profiler's own cost
            prof.__exit__(None, None, None)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
            prof = None
        t = time.perf_counter()
        task.score(model)
        sync()
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
    median = sorted(times[1:])[len(times[1:]) // 2]
    print(f"steady model: training {steady:.2f} s (median {median:.2f}), scoring {steady_score:.2f} s; all: {every}")
    print(
        f"cuDNN: {'benchmark' if torch.backends.cudnn.benchmark else 'heuristic'}; ",
        torch.cuda.get_device_name() if dev == "cuda" else "CPU",
        torch.__version__,
    )
    if args.unlearn:
        time_unlearning(task, cfg, args.unlearn.split(","), models_kept)


def time_unlearning(task, cfg, names, kept) -> None:
    """Each method on the trained models, as an unlearning job runs it (umia.stages.shards._unlearn_one:
    the method, the trajectory's probes, scoring, the tables): first model and the steady ones."""
    import torch

    from umia import methods
    from umia.config import load_schema, method_settings, resolve
    from umia.stages import shards as jobs

    cfg = resolve(cfg, load_schema(Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"))
    sync = torch.cuda.synchronize if torch.cuda.is_available() else lambda: None
    for name in names:
        fn, spec, settings = methods.resolve(name, method_settings(cfg, name))
        target = torch.full((task.n_pool,), -float("inf")) if spec.needs_retrain_scores else None  # never stops early
        times = []
        for model_id, state in kept.items():
            t = time.perf_counter()
            jobs._unlearn_one(task, fn, name, name, settings, state, model_id, cfg["seed"], 4, target, False)
            sync()
            times.append(time.perf_counter() - t)
        print(f"unlearn {name}: first model {times[0]:.2f} s, steady {min(times[1:]):.2f} s a model (of {len(times)})")


if __name__ == "__main__":
    main()
