"""What the reduced IMDB study measured, from its logs and tables alone: N, the base model's size,
tokens, time per fine-tuning and per unlearning run, the shadow models' perplexity on held-out
reviews, and the summary table.

    python benchmarks/imdb_summary.py results/imdb-gpu [--wall SECONDS]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

FINETUNE = re.compile(  # umia.stages.shards.train_shard's line with TextTask.describe
    r"(original|retrain) model (\d+): (\d+) examples, ([\d.]+) s, (\d+) tokens, "
    r"held-out perplexity ([\d.]+), member perplexity ([\d.]+)"
)
UNLEARN = re.compile(  # umia.stages.shards.unlearn_shard's line (tokens and member perplexity: the retain set's)
    r"(\S+) model (\d+): forgot (\d+) examples in ([\d.]+) s \((\d+) steps\), (\d+) tokens, "
    r"held-out perplexity ([\d.]+), member perplexity ([\d.]+)"
)
BENCH = re.compile(
    r"(\d+) pool and (\d+) test reviews, (\d+) tokens in all \(at most (\d+) each\); .*?, (\d+) parameters, on (\S+)"
)


def _rows(pattern: re.Pattern, files: list[Path], names: list[str]) -> pd.DataFrame:
    rows = [m.groups() for f in files for m in pattern.finditer(f.read_text())]
    df = pd.DataFrame(rows, columns=names)
    for c in names[1:]:
        df[c] = pd.to_numeric(df[c])
    return df


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", type=Path)
    p.add_argument("--wall", type=float, default=None, help="the workflow's wall time in seconds")
    a = p.parse_args()
    r = a.results
    train_logs = sorted((r / "logs/train").glob("*.log"))
    ft = _rows(FINETUNE, train_logs, ["stage", "model", "reviews", "seconds", "tokens", "heldout_ppl", "member_ppl"])
    un = _rows(
        UNLEARN,
        sorted((r / "logs/unlearn").glob("*.log")),
        ["method", "model", "forgot", "seconds", "steps", "retain_tokens", "heldout_ppl", "retain_ppl"],
    )
    bench = [m.groups() for f in train_logs for m in BENCH.finditer(f.read_text())][:1]
    base = r / "base/umia.json"
    meta = json.loads(base.read_text()) if base.exists() else {}
    print(f"== reduced IMDB study: {r}")
    if bench:
        n_pool, n_test, tokens, cut, params, device = bench[0]
        print(f"pool {n_pool} reviews, {n_test} held-out test reviews; {tokens} tokens scored per model (cut at {cut})")
        print(f"base model: {int(params):,} parameters ({device})")
    if meta:
        print(
            "pretraining: {texts} reviews, {tokens:,} tokens, {steps} steps of {batch_size}; layers {n_layer}, width "
            "{n_embd}, heads {n_head}, vocabulary {vocab_size}; held-out perplexity {p:.1f}".format(
                p=meta.get("heldout_perplexity", float("nan")), **meta
            )
        )
    if len(ft):
        print(f"N = {ft[ft.stage == 'original'].model.nunique()} original models")
        g = ft.groupby("stage").agg(
            models=("model", "size"),
            reviews=("reviews", "mean"),
            tokens=("tokens", "mean"),
            s_median=("seconds", "median"),
            s_mean=("seconds", "mean"),
            heldout_ppl=("heldout_ppl", "median"),
            member_ppl=("member_ppl", "median"),
        )
        print("fine-tuning (per model; the first of a job includes warm-up):\n" + g.round(2).to_string())
    if len(un):
        g = un.groupby("method").agg(
            models=("model", "size"),
            forgot=("forgot", "mean"),
            steps=("steps", "mean"),
            s_median=("seconds", "median"),
            s_mean=("seconds", "mean"),
            heldout_ppl=("heldout_ppl", "median"),
            retain_ppl=("retain_ppl", "median"),
        )
        print("unlearning (per model):\n" + g.round(3).to_string())
    jobs = []
    for f in sorted((r / "benchmarks").rglob("*.tsv")):
        jobs.append((f.relative_to(r / "benchmarks").with_suffix("").as_posix(), pd.read_csv(f, sep="\t")["s"].iloc[0]))
    if jobs:
        print("job wall times (s): " + ", ".join(f"{n} {s:.1f}" for n, s in jobs))
    if a.wall is not None:
        print(f"workflow wall time: {a.wall:.0f} s")
    summary = r / "tables/summary.csv"
    if summary.exists():
        s = pd.read_csv(summary)
        cols = ["method", "attack", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "auc", "tpr_at_1pct_fpr"]
        print("summary:\n" + s[cols].round(3).to_string(index=False))
    findings = r / "tables/findings.csv"
    if findings.exists():
        print("findings:\n" + pd.read_csv(findings).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
