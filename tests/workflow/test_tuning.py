"""The tuning stage end to end on digits: a grid whose every setting breaks the utility guard
stops the run with one line and loses nothing; widening it reruns only the new setting, the pick
is the rule's on the tuning tables, and the study runs it; the report and figures carry it; each
of the other two rules then picks from the same tuning models, and the study follows."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml

from tests.workflow.conftest import ROOT, snakemake
from umia.stages import tuning

TINY_TUNE = ROOT / "tests/workflow/tiny_tune.yaml"


def _run(tmp: Path, grid_extra: dict | None = None, check: bool = True):
    cfg = yaml.safe_load(TINY_TUNE.read_text())
    cfg["results_dir"] = str(tmp / "results")
    if grid_extra:
        cfg["tune"].update(grid_extra)
    (tmp / "run.yaml").write_text(yaml.safe_dump(cfg))
    return snakemake("--configfile", str(tmp / "run.yaml"), check=check)


def _jobs(proc, rule: str) -> int:
    return len(re.findall(rf"^local(?:rule|checkpoint) {rule}:$", proc.stdout + proc.stderr, flags=re.M))


def _ran_pick(r: Path, method: str) -> bool:
    """The study's job for a tuned method ran the setting tables/tuning.csv picked: its log is
    named by the pick and states the pick's learning rate."""
    pick = tuning.picked(str(r / "tables/tuning.csv"), method)
    log = r / f"logs/unlearn/{method}-tuned-{pick}-shard-000.log"
    return log.exists() and f"'lr': {pick.split('lr=')[1]}" in log.read_text()


def test_tuning_stage(tmp_path):
    r = tmp_path / "results/tiny_tune"
    # 1. gradient ascent at lr 5 diverges: nothing passes the guard, the run stops with one line
    failed = _run(tmp_path, check=False)
    assert failed.returncode != 0
    line = next(ln for ln in (failed.stdout + failed.stderr).splitlines() if "every setting fails" in ln)
    assert "tune.gradient_ascent" in line and "gradient_ascent@lr=5.0" in line and "widen the grid" in line
    assert not (r / "tables/tuning.csv").exists()
    kept = sorted(p.name for p in (r / "tuning/shards/unlearned").iterdir())
    assert kept == ["finetune@lr=0.001", "finetune@lr=0.05", "gradient_ascent@lr=5.0"]  # nothing lost

    # 2. a gentler setting added: only it is unlearned anew; the stage picks, the study follows
    done = _run(tmp_path, {"gradient_ascent": {"lr": [5.0, 0.001]}})
    assert _jobs(done, "tune_unlearn") == 1 and _jobs(done, "tune_train_original") == 0
    table = pd.read_csv(r / "tables/tuning.csv")
    assert len(table) == 4 and table.groupby("method").picked.sum().tolist() == [1, 1]
    assert table.set_index("setting").loc["gradient_ascent@lr=5.0", "passes_guard"] == False  # noqa: E712
    # the pick is the rule's: the population loss accuracy closest to 0.5 among those in the guard
    summary = pd.read_csv(r / "tuning/tables/summary.csv")
    utility = pd.read_csv(r / "tuning/tables/utility.csv")
    grids = {
        "finetune": ["finetune@lr=0.001", "finetune@lr=0.05"],
        "gradient_ascent": ["gradient_ascent@lr=5.0", "gradient_ascent@lr=0.001"],
    }
    again = tuning.select(summary, utility, grids, "population_loss", 0.02)
    assert again.loc[again.picked, "setting"].tolist() == table.loc[table.picked, "setting"].tolist()
    assert table.query("method == 'gradient_ascent' and picked").setting.item() == "gradient_ascent@lr=0.001"
    for m in ("finetune", "gradient_ascent"):
        assert _ran_pick(r, m)  # the study ran the picked setting
    page = (r / "report/summary.html").read_text()
    assert "Tuned settings" in page and "lr=0.001" in page and "challenge score" in page
    assert (r / "figures/privacy_utility.png").stat().st_size > 5000
    util = pd.read_csv(r / "tables/utility.csv").set_index("method")
    assert list(util.index) == ["none", "retrain", "finetune", "gradient_ascent"]
    assert (util.test_accuracy > 0.85).all()

    # 3. nothing changed: nothing reruns
    idle = snakemake("--configfile", str(tmp_path / "run.yaml"), "-n")
    assert "Nothing to be done" in idle.stdout + idle.stderr

    # 4. another rule: no tuning model is recomputed, the pick is that rule's, the study follows it
    for rule in ("forget_accuracy", "challenge"):
        cfg = yaml.safe_load((tmp_path / "run.yaml").read_text())
        cfg["tuning"]["rule"] = rule
        (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
        proc = snakemake("--configfile", str(tmp_path / "run.yaml"))
        assert _jobs(proc, "tune") == 1 and _jobs(proc, "tune_unlearn") == 0 and _jobs(proc, "train_original") == 0
        table = pd.read_csv(r / "tables/tuning.csv")
        expected = tuning.select(summary, utility, grids, rule, 0.02)
        assert table.loc[table.picked, "setting"].tolist() == expected.loc[expected.picked, "setting"].tolist(), rule
        assert (table.rule == rule).all()
        for m in ("finetune", "gradient_ascent"):
            assert _ran_pick(r, m), rule
        # the scores of each tuned method are those of its pick's models, under the method's name
        scores = pd.read_parquet(r / "scores", columns=["method"]).method.unique().tolist()
        assert {"finetune", "gradient_ascent"} <= set(scores) and not any("tuned" in m for m in scores)
