"""Shadow-model settings for text against saturation: for each finished experiment of a grid (same
base, same pool, one fine-tuning setting each), the `none` control's U-LiRA accuracy, the
population loss attack's, the retrain control's, and the originals' held-out and member
perplexity; then the setting whose `none` U-LiRA is closest to the middle of the target band.

    python benchmarks/imdb_grid.py results/imdb-g1 results/imdb-g2 ... [--band 0.7 0.9]

With ``--pick``, the last line printed is the picked experiment's folder, or, when no setting lands
in the band, "between A B": the two full fine-tuning points whose accuracies bracket it (for one more
setting), or "none".
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd
import yaml

FINETUNE = re.compile(
    r"original model (\d+): \d+ examples, ([\d.]+) s, \d+ tokens, held-out perplexity ([\d.]+|nan|inf), "
    r"member perplexity ([\d.]+|nan|inf)"
)


def row(r: Path) -> dict:
    s = pd.read_csv(r / "tables/summary.csv").set_index(["method", "attack"])
    ft = [m.groups() for f in sorted((r / "logs/train").glob("*.log")) for m in FINETUNE.finditer(f.read_text())]
    ft = pd.DataFrame(ft, columns=["model", "s", "heldout", "member"]).astype(float)
    overlay = r.with_suffix(".yaml")  # the point's settings (benchmarks/gpu/imdb_study.sh writes it)
    cfg = yaml.safe_load(overlay.read_text()) if overlay.exists() else {}
    train = cfg.get("train", {})
    return {
        "experiment": r.name,
        "epochs": train.get("epochs"),
        "lr": train.get("lr"),
        "adapter": (train.get("adapter") or {}).get("rank", "full"),
        "N": cfg.get("n_models"),
        "none_ulira": s.loc[("none", "ulira"), "accuracy"],
        "none_ulira_tpr1": s.loc[("none", "ulira"), "tpr_at_1pct_fpr"],
        "none_loss": s.loc[("none", "population_loss"), "accuracy"],
        "retrain_ulira": s.loc[("retrain", "ulira"), "accuracy"],
        "heldout_ppl": ft.heldout.median(),
        "member_ppl": ft.member.median(),
        "finetune_s": ft.s.median(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="+")
    ap.add_argument("--band", type=float, nargs=2, default=(0.7, 0.9))
    ap.add_argument("--pick", action="store_true")
    a = ap.parse_args()
    rows = pd.DataFrame([row(r) for r in a.results if (r / "tables/summary.csv").exists()])
    if rows.empty:
        raise SystemExit("no finished experiment among " + " ".join(map(str, a.results)))
    print(
        rows.round(3)
        .assign(lr=rows.lr.map(lambda x: "?" if x is None or x != x else f"{x:.0e}"))
        .to_string(index=False)
    )
    if not a.pick:
        return
    lo, hi = a.band
    mid = (lo + hi) / 2
    inside = rows[(rows.none_ulira >= lo) & (rows.none_ulira <= hi)]
    if len(inside):
        best = inside.iloc[(inside.none_ulira - mid).abs().argmin()]
        print(next(r for r in a.results if r.name == best.experiment))
        return
    full = rows[rows.adapter == "full"]  # bracket within one kind of shadow model: full fine-tuning
    below, above = full[full.none_ulira < lo], full[full.none_ulira > hi]
    if len(below) and len(above):
        b, t = below.loc[below.none_ulira.idxmax()], above.loc[above.none_ulira.idxmin()]
        print(f"between {b.experiment} {t.experiment}")
    else:
        print("none")


if __name__ == "__main__":
    main()
