"""Per-stage times of a finished workflow run, the models' accuracy, and the extrapolation to a
larger study (by default the paper-scale CIFAR-10 study: N=128, six methods plus the controls).

usage: python benchmarks/stage_times.py RESULTS/EXPERIMENT [--to-n 128] [--to-methods 6]
       [--shard-size 32] [--wall SECONDS]

Reads the Snakemake benchmark files (each job's wall seconds) and the model jobs' logs (when
each model finished, its test accuracy). For a model job, the *start-up* is the time before its
first model is done minus one steady model (process start, CUDA init, data load, cuDNN tuning), and
the *per-model* time is the mean time between models after the first. The extrapolation keeps
each job's start-up and scales the models; the CPU stages after the models (gather, attacks,
rates, figures) scale with the number of score rows, i.e. with N x (methods + 2). It is the sum of
the stages: the wall time if jobs run one at a time, an upper bound when several share the GPU.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")
MODEL_DONE = re.compile(
    r"(?:original|retrain) model \d+: .* test accuracy ([\d.]+)|model \d+: forgot .* test accuracy ([\d.]+)"
)
TTA = re.compile(r"\(mirror-TTA ([\d.]+)\)")
CPU_STAGES = ("gather", "gather_trajectory", "attacks", "rates", "figures", "report_page")
ROOT = Path(__file__).resolve().parents[1]  # the repository
PLAN_STAGES = ("prepare_data", "candidates", "membership", "examples")


def _seconds(path: Path) -> float:
    return float(pd.read_csv(path, sep="\t")["s"].iloc[0])


def model_job(log: Path, bench: Path) -> dict:
    """Start-up, per-model time and accuracies of one model job, from its log and benchmark."""
    times, accs, tta = [], [], []
    first = None
    for line in log.read_text().splitlines():
        m = STAMP.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        first = t if first is None else first
        d = MODEL_DONE.search(line)
        if d:
            times.append(t)
            accs.append(float(d.group(1) or d.group(2)))
            if m_tta := TTA.search(line):
                tta.append(float(m_tta.group(1)))
    total = _seconds(bench)
    steady = float(np.mean(np.diff(times))) if len(times) > 1 else float("nan")
    # the job's wall time minus (models - 1) steady models: start-up, first model's tuning, writing
    startup = total - steady * (len(times) - 1) if len(times) > 1 else total
    span = (first, times[-1]) if times else (first, first)  # first log line to the last model, epoch s
    return {
        "total": total,
        "models": len(times),
        "steady": steady,
        "startup": startup,
        "start": span[0],
        "end": span[1],
        "accuracy": accs,
        "tta": tta,
    }


def mean_at_once(spans: list[tuple[float, float]]) -> float:
    """The mean number of the (start, end) spans running at once, over the time any of them runs."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    busy = weighted = 0.0
    running, last = 0, None
    for t, d in edges:
        if last is not None and running:
            busy += t - last
            weighted += running * (t - last)
        running, last = running + d, t
    return weighted / busy if busy else float("nan")


def stage_table(run: Path) -> tuple[pd.DataFrame, dict]:
    rows, accuracy = [], defaultdict(list)
    for stage, pattern in (
        ("train original", "train/original-shard-*.tsv"),
        ("train retrain", "train/retrain-shard-*.tsv"),
    ):
        for bench in sorted((run / "benchmarks").glob(pattern)):
            log = run / "logs" / "train" / (bench.stem + ".log")
            j = model_job(log, bench)
            rows.append({"stage": stage, **{k: v for k, v in j.items() if k not in ("accuracy", "tta")}})
            accuracy[stage] += j["accuracy"]
            accuracy[f"{stage}, mirror-TTA"] += j["tta"]
    for bench in sorted((run / "benchmarks" / "unlearn").glob("*.tsv")):
        method = bench.stem.rsplit("-shard-", 1)[0]
        j = model_job(run / "logs" / "unlearn" / (bench.stem + ".log"), bench)
        rows.append({"stage": f"unlearn {method}", **{k: v for k, v in j.items() if k not in ("accuracy", "tta")}})
        accuracy[f"unlearn {method}"] += j["accuracy"]
    for stage in PLAN_STAGES + CPU_STAGES:
        bench = run / "benchmarks" / f"{stage}.tsv"
        if bench.exists():
            rows.append({"stage": stage, "total": _seconds(bench), "models": 0})
    return pd.DataFrame(rows), accuracy


def extrapolate(df: pd.DataFrame, n: int, methods: int, to_n: int, to_methods: int, shard: int) -> pd.DataFrame:
    """Each stage at the target size, from the measured start-up and per-model times."""
    jobs_per_stage = -(-to_n // shard)
    out = []
    model_stages = (
        df[df["models"] > 0]
        .groupby("stage")
        .agg(startup=("startup", "mean"), steady=("steady", "mean"), total=("total", "sum"), jobs=("total", "size"))
    )
    unlearn = model_stages[model_stages.index.str.startswith("unlearn ")]
    for stage, r in model_stages.iterrows():
        if stage.startswith("unlearn "):
            continue
        out.append(
            {
                "stage": stage,
                "measured": r["total"],
                "extrapolated": jobs_per_stage * r["startup"] + (to_n - jobs_per_stage) * r["steady"],
            }
        )
    if len(unlearn):
        measured = unlearn["total"].sum()
        per_method = (jobs_per_stage * unlearn["startup"] + (to_n - jobs_per_stage) * unlearn["steady"]).mean()
        out.append(
            {
                "stage": f"unlearn ({len(unlearn)} measured -> {to_methods} methods)",
                "measured": measured,
                "extrapolated": to_methods * per_method,
            }
        )
    scale = (to_n * (to_methods + 2)) / (n * (methods + 2))
    for stage in PLAN_STAGES + CPU_STAGES:
        r = df[df["stage"] == stage]
        if len(r):
            t = float(r["total"].iloc[0])
            out.append({"stage": stage, "measured": t, "extrapolated": t if stage in PLAN_STAGES else t * scale})
    res = pd.DataFrame(out)
    total = {"stage": "sum of stages", "measured": res["measured"].sum(), "extrapolated": res["extrapolated"].sum()}
    return pd.concat([res, pd.DataFrame([total])], ignore_index=True)


def training_flops(network: str, width: int, epochs: float, n_train: int, batch_size: int) -> float:
    """FLOPs of one training run (forward and backward of every batch), counted by PyTorch's
    FlopCounterMode on one batch of 32x32 RGB images."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from umia.tasks.image import networks as models

    net = models.build(network, (3, 32, 32), 10, width)
    with FlopCounterMode(display=False) as fc:
        net(torch.randn(8, 3, 32, 32)).sum().backward()
    steps = round(epochs * (n_train // batch_size))
    return fc.get_total_flops() / 8 * steps * batch_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="results/<experiment>")
    ap.add_argument("--to-n", type=int, default=128)
    ap.add_argument("--to-methods", type=int, default=6)
    ap.add_argument("--shard-size", type=int, default=32, help="shard size of the extrapolated study")
    ap.add_argument("--wall", type=float, default=None, help="the measured wall time of the whole run, seconds")
    ap.add_argument(
        "--config", default=str(ROOT / "config/cifar10.yaml"), help="the training recipe, for the FLOP count"
    )
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="the card's dense bf16 peak (H100 SXM: 989)")
    a = ap.parse_args()
    df, acc = stage_table(a.run)
    n = int(df[df["stage"] == "train original"]["models"].sum())
    methods = df.loc[df["stage"].str.startswith("unlearn "), "stage"].nunique()  # entries, not jobs
    pd.set_option("display.width", 160)
    print(f"run: {a.run}  (N={n}, {methods} methods besides the controls)\n")
    print("model jobs (seconds; steady = per model after the first, start-up = the rest of the job):")
    print(df[df["models"] > 0].round(2).to_string(index=False))
    print("\nmean test accuracy of the models (plain, and with mirror TTA where the job logs it):")
    for stage, a_ in acc.items():
        if not a_:
            continue
        print(f"  {stage:28s} {100 * np.mean(a_):6.2f}%  (min {100 * np.min(a_):.2f}%, {len(a_)} models)")
    import yaml

    t = yaml.safe_load(open(a.config))
    flops = training_flops(t["network"], t["train"]["width"], t["train"]["epochs"], 25_000, t["train"]["batch_size"])
    jobs = df[df["stage"].str.startswith("train ")]
    concurrent = mean_at_once(list(zip(jobs["start"], jobs["end"], strict=True)))  # train jobs sharing the card
    per_model = float(jobs["steady"].mean())
    print(
        f"\ntraining: {flops / 1e12:.1f} TFLOP a model ({t['network']}, {t['train']['epochs']} epochs of a 25k half); "
        f"{per_model:.2f} s a model per job, about {concurrent:.1f} train jobs at once: "
        f"{concurrent * flops / per_model / 1e12:.0f} TFLOP/s on the card = "
        f"{100 * concurrent * flops / per_model / 1e12 / a.peak_tflops:.0f}% of its {a.peak_tflops:g} TFLOP/s bf16 peak"
    )
    ex = extrapolate(df, n, methods, a.to_n, a.to_methods, a.shard_size)
    print(f"\nstages, measured at N={n} and extrapolated to N={a.to_n} with {a.to_methods} methods:")
    print(ex.round(1).to_string(index=False))
    if a.wall:
        ratio = a.wall / ex["measured"].iloc[-1]
        print(f"\nmeasured wall time {a.wall:.0f} s = {ratio:.2f} x the sum of stages (jobs overlapping on the GPU);")
        print(f"the extrapolated study at that ratio: {ex['extrapolated'].iloc[-1] * ratio / 60:.1f} min")
    print(f"extrapolated sum of stages (jobs one at a time): {ex['extrapolated'].iloc[-1] / 60:.1f} min")


if __name__ == "__main__":
    main()
