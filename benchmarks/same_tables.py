"""Whether two results folders of one experiment hold the same tables, byte for byte apart from
provenance stamps.

Compares every table a run writes (``plan/``, ``scores/``, ``shards/``, ``trajectory/`` and
``tables/``, Parquet and CSV): CSV files byte for byte; Parquet files by their Arrow schema, their
rows (exactly, NaN equal to NaN) and their config hash, leaving out the provenance stamp (commit,
host, times). Checkpoints, logs, figures and the report page carry times and paths and are not
compared. Exits 1 and names every difference, 0 when there is none.

    python benchmarks/same_tables.py results-before/tiny results-after/tiny

Used to show that a change that should not move any number (a refactoring) did not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow.parquet as pq

FOLDERS = ("plan", "scores", "shards", "trajectory", "tables")
PROVENANCE_KEY = b"umia.provenance"


def tables(root: Path) -> dict[str, Path]:
    """Relative path -> file, for every Parquet and CSV file under the compared folders."""
    out = {}
    for folder in FOLDERS:
        for f in sorted((root / folder).rglob("*")):
            if f.is_file() and f.suffix in (".parquet", ".csv"):
                out[str(f.relative_to(root))] = f
    return out


def parquet_difference(a: Path, b: Path) -> str | None:
    """Why two Parquet files differ (schema, hash, rows), or None when they hold the same table."""
    ta, tb = pq.read_table(a), pq.read_table(b)
    meta_a = {k: v for k, v in (ta.schema.metadata or {}).items() if k != PROVENANCE_KEY}
    meta_b = {k: v for k, v in (tb.schema.metadata or {}).items() if k != PROVENANCE_KEY}
    if meta_a != meta_b:
        return f"metadata differs: {sorted(set(meta_a.items()) ^ set(meta_b.items()))}"
    ta, tb = ta.replace_schema_metadata(None), tb.replace_schema_metadata(None)
    if ta.schema != tb.schema:
        return f"schema differs:\n{ta.schema}\n{tb.schema}"
    if ta.num_rows != tb.num_rows:
        return f"{ta.num_rows} rows against {tb.num_rows}"
    for name in ta.column_names:
        x, y = ta[name].to_pandas(), tb[name].to_pandas()
        same = (x == y) | (x.isna() & y.isna())
        if not same.all():
            k = int((~same).idxmax())
            return f"column {name}: {int((~same).sum())} rows differ (first, row {k}: {x[k]!r} against {y[k]!r})"
    return None


def compare(a: Path, b: Path) -> list[str]:
    """Every difference between the tables of results folders ``a`` and ``b``."""
    ta, tb = tables(a), tables(b)
    problems = [f"only in {a}: {k}" for k in sorted(ta.keys() - tb.keys())]
    problems += [f"only in {b}: {k}" for k in sorted(tb.keys() - ta.keys())]
    for k in sorted(ta.keys() & tb.keys()):
        if k.endswith(".csv"):
            if ta[k].read_bytes() != tb[k].read_bytes():
                problems.append(f"{k}: the CSV files differ")
        elif why := parquet_difference(ta[k], tb[k]):
            problems.append(f"{k}: {why}")
    if not ta:
        problems.append(f"{a}: no tables (is it a results folder, e.g. results/<experiment>?)")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    args = p.parse_args(argv)
    problems = compare(args.before, args.after)
    for line in problems:
        print(line)
    n = len(tables(args.before))
    print(f"{n} tables compared: {'the same' if not problems else f'{len(problems)} differences'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
