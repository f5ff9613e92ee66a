"""Write a seeded subset of the IMDB Parquet, small enough to carry to the GPU machine with the
Snakemake wheels (the device call carries at most 64 MiB; the full file is 28 MB, the wheels 26 MB).

    python benchmarks/gpu/imdb_subset.py                  # ../shared/data/imdb.parquet -> .parts/imdb-small.parquet

Keeps the columns and doc_ids of the source; the workflow cleans and deduplicates it as it would
the full corpus (duplicates outside the subset cannot leak into it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", nargs="?", default="../shared/data/imdb.parquet")
    p.add_argument("--out", default=".parts/imdb-small.parquet")
    p.add_argument(
        "--train",
        type=int,
        default=4000,
        help="reviews of the train split (the pool and the held-out reviews are drawn from them)",
    )
    p.add_argument("--test", type=int, default=10000, help="reviews of the test split (the pretraining reviews)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    df = pd.read_parquet(a.source)
    rng = np.random.default_rng(a.seed)
    parts = []
    for split, n in (("train", a.train), ("test", a.test)):
        rows = df[df["split"] == split]
        parts.append(rows.iloc[np.sort(rng.choice(len(rows), min(n, len(rows)), replace=False))])
    out = pd.concat(parts, ignore_index=True)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(a.out, index=False, compression="zstd")
    print(f"{a.out}: {len(out)} reviews ({a.train} train, {a.test} test), {Path(a.out).stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
