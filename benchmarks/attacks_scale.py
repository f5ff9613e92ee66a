"""Attacks at paper scale: a synthetic score table of 256 models x 60,000 examples x 2 views
(30.7 M rows) for the originals, the retrains and each unlearning method, run through every attack
exactly as the workflow's `attacks` rule does (umia.stages.tables.attack_tables). Prints the wall time
and the peak memory (max RSS).

usage: python benchmarks/attacks_scale.py [--models 256] [--examples 60000] [--methods 3]
                                         [--threads 0] [--no-epsilons]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from umia import io, plan
from umia.stages.tables import attack_tables


def synthetic(path: Path, n_models: int, n_pool: int, n_test: int, n_cand: int, methods: list[str], seed=0):
    """Write membership and a long score table whose phi depends on membership per example."""
    rng = np.random.default_rng(seed)
    cand = np.sort(rng.choice(n_pool, n_cand, replace=False))
    member = plan.membership(seed, n_models, n_pool, cand)
    io.write_table(member, path / "membership.parquet", io.MEMBERSHIP, "bench")
    train = member.in_train.to_numpy().reshape(n_models, n_pool)
    forget = member.in_forget.to_numpy().reshape(n_models, n_pool)
    n = n_pool + n_test
    labels = rng.integers(0, 10, n).astype(np.int16)
    base = rng.normal(2, 2, n).astype(np.float32)  # per-example difficulty
    schema = io.SCORES.with_metadata({io.HASH_KEY: b"bench"})
    with pq.ParquetWriter(path / "scores.parquet", schema) as w:
        for stage, method, gap in [("original", "none", 1.0), ("retrain", "retrain", 0.0)] + [
            ("unlearned", m, 0.3) for m in methods
        ]:
            for i in range(n_models):
                seen = np.r_[train[i] & ~forget[i] if stage != "original" else train[i], np.zeros(n_test, bool)]
                forgot = np.r_[forget[i], np.zeros(n_test, bool)]
                phi = base + np.where(seen, 1.0, 0.0) + (np.where(forgot, gap, 0.0) if stage != "retrain" else 0)
                for v in ("identity", "mirror"):
                    p = (phi + rng.standard_normal(n).astype(np.float32)).astype(np.float32)
                    w.write_table(
                        pa.table(
                            {
                                "model_id": np.full(n, i, np.int32),
                                "stage": np.full(n, stage),
                                "method": np.full(n, method),
                                "example_id": np.arange(n, dtype=np.int64),
                                "split": np.r_[np.full(n_pool, "pool"), np.full(n_test, "test")],
                                "label": labels,
                                "view": np.full(n, v),
                                "phi": p,
                                "loss": np.log1p(np.exp(-p)).astype(np.float32),
                                "correct": p > 0,
                            },
                            schema=schema,
                        )
                    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=256)
    ap.add_argument("--examples", type=int, default=60_000, help="pool + test")
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--methods", type=int, default=3, help="unlearning methods besides the controls")
    ap.add_argument("--threads", type=int, default=0, help="methods attacked side by side (0: one a core)")
    ap.add_argument(
        "--no-epsilons", action="store_true", help="skip the attacks' challenge epsilons (as the tuning stage does)"
    )
    args = ap.parse_args()
    n_test = args.examples // 6
    methods = [f"method{k}" for k in range(args.methods)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        synthetic(tmp, args.models, args.examples - n_test, n_test, args.candidates, methods)
        rows = pq.ParquetFile(tmp / "scores.parquet").metadata.num_rows
        print(
            f"synthetic table: {rows / 1e6:.1f} M rows, {(tmp / 'scores.parquet').stat().st_size / 2**20:.0f} MiB "
            f"({time.perf_counter() - t0:.0f} s to build)",
            flush=True,
        )
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        t0 = time.perf_counter()
        summary = attack_tables(
            scores=str(tmp / "scores.parquet"),
            membership=str(tmp / "membership.parquet"),
            out_summary=str(tmp / "summary.csv"),
            out_per_example=str(tmp / "per_example.parquet"),
            out_roc=str(tmp / "roc.parquet"),
            out_utility=str(tmp / "utility.csv"),
            methods=methods,
            n_folds=4,
            loss_cv_folds=5,
            n_bootstrap=100,
            seed=0,
            config_hash="bench",
            threads=args.threads,
            attack_epsilons=not args.no_epsilons,
        )
        dt = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    pd.set_option("display.width", 200)
    print(summary[["method", "attack", "accuracy", "auc", "tpr_at_1pct_fpr"]].to_string(index=False))
    shape = f"{args.models} models x {args.examples} examples x 2 views, {len(methods)} methods + 2 controls"
    shape += f", {args.threads or 'all'} threads" + (", no challenge epsilons" if args.no_epsilons else "")
    print(f"\nattacks on {shape}:")
    print(f"  wall time {dt:.1f} s; peak RSS {rss:.2f} GiB (before the attacks: {rss0:.2f} GiB)")


if __name__ == "__main__":
    main()
