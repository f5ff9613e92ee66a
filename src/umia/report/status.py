"""Where a study stands, read from its results folder alone (no Snakemake, no model): per stage,
the models done out of the total, the shards being worked on, and an ETA from the run's pace.

A model counts as done when its shard's score file is written, or, inside a shard still running,
when its scratch folder holds it (umia.runtime.scratch: one folder per finished model). The totals
come from the config the run recorded (umia.runtime.study's stamp); the pace from the models
finished since the current run started (umia.runtime.runlock's lock).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from umia import plugins
from umia.config import tuning_grids, unlearn_shard_size
from umia.errors import UmiaError
from umia.runtime import runlock, study


class NoStudy(UmiaError):
    """The folder holds no umia study."""


@dataclass(frozen=True)
class Stage:
    """One stage: models done (``done`` of ``total``), shards in progress, the last finish time."""

    name: str
    done: int
    total: int
    running: int = 0
    finished: tuple[float, ...] = ()  # modification times of the models counted done


@dataclass(frozen=True)
class Status:
    results: Path
    experiment: str
    stages: tuple[Stage, ...]
    tables: dict[str, bool]
    run: dict | None  # the live run's lock (host, pid, started), or None
    eta_seconds: float | None

    @property
    def models_done(self) -> int:
        return sum(s.done for s in self.stages)

    @property
    def models_total(self) -> int:
        return sum(s.total for s in self.stages)


def _models(root: Path, where: str, per_shard: int, total: int) -> tuple[int, int, list[float]]:
    """(models done, shards in progress, finish times) of the shards under ``root/shards/<where>``
    (``<stage>/<method>``, tuned picks' sub-folders included) and their scratch folders."""
    folder, scratch = root / "shards" / where, root / "scratch" / where
    times, running = [], 0
    for f in sorted(folder.rglob("shard-*.parquet")) if folder.is_dir() else []:
        times += [f.stat().st_mtime] * per_shard
    for shard in sorted(scratch.rglob("shard-*")) if scratch.is_dir() else []:
        if shard.is_dir():
            models = [m for m in shard.glob("model-*") if m.is_dir()]
            running += 1
            times += [m.stat().st_mtime for m in models]
    return min(len(times), total), running, sorted(times)[:total]


def stages(results: Path, config: Mapping) -> list[Stage]:
    """Every model stage of the study (the tuning stage's too, where it has one)."""
    n, k, u = config["n_models"], config["shard_size"], unlearn_shard_size(config)
    scopes = [("", n, k, u, [plugins.method_id(s) for s in config["methods"]])]
    grids = tuning_grids(config)
    if grids:
        tn = config["tuning"]["n_models"]
        specs = [plugins.method_id(s) for specs in grids.values() for s in specs]
        scopes.insert(0, ("tuning: ", tn, math.gcd(tn, k), math.gcd(tn, u), specs))
    out = []
    for prefix, n_models, k_train, k_unlearn, methods in scopes:
        root = results / "tuning" if prefix else results
        for stage, method, label in (("original", "none", "train originals"), ("retrain", "retrain", "train retrains")):
            done, running, times = _models(root, f"{stage}/{method}", k_train, n_models)
            out.append(Stage(prefix + label, done, n_models, running, tuple(times)))
        done = running = 0
        times: list[float] = []
        for m in methods:
            d, r, t = _models(root, f"unlearned/{m}", k_unlearn, n_models)
            done, running, times = done + d, running + r, times + t
        out.append(
            Stage(f"{prefix}unlearn ({len(methods)} methods)", done, n_models * len(methods), running, tuple(times))
        )
    return out


def _started(lock: Mapping) -> float | None:
    try:
        return time.mktime(time.strptime(lock["started"], "%Y-%m-%d %H:%M:%S"))
    except (KeyError, ValueError):
        return None


def status(results: str | Path, now: float | None = None) -> Status:
    """The study in ``results`` (``results/<experiment>``); ``NoStudy`` where there is none."""
    results = Path(results)
    stamp = results / study.STAMP
    if not stamp.is_file():
        raise NoStudy(
            f"{results} holds no umia study a run has started (no {study.STAMP}); give the folder of one "
            "experiment, e.g. results/digits"
        )
    blob = json.loads(stamp.read_text())
    config = blob.get("run")
    if not config:
        raise NoStudy(f"{stamp} was written by an older umia and lacks the run's config; run the study again")
    found = stages(results, config)
    tables = {
        name: (results / path).is_file()
        for name, path in (
            ("scores", "scores/scores.parquet"),
            ("attack tables", "tables/summary.csv"),
            ("figures", "tables/findings.csv"),
            ("report page", "report/summary.html"),
        )
    }
    lock = runlock.held(results)
    eta = None
    now = time.time() if now is None else now
    start = _started(lock) if lock else None
    if start is not None:
        recent = sorted(t for s in found for t in s.finished if t >= start)
        left = sum(s.total - s.done for s in found)
        if recent and left and now > start:
            eta = left * (now - start) / len(recent)
        elif not left:
            eta = 0.0
    return Status(results, config.get("experiment", results.name), tuple(found), tables, lock, eta)


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s" if m else f"{s} s"


def render(st: Status) -> str:
    """The status as the terminal shows it."""
    width = max(len(s.name) for s in st.stages)
    lines = [f"study {st.experiment} in {st.results}"]
    if st.run:
        lines.append(
            f"running since {st.run.get('started', '?')} (host {st.run.get('host')}, process {st.run.get('pid')})"
        )
    else:
        lines.append("no run is going on")
    for s in st.stages:
        bar = "#" * round(20 * s.done / s.total) if s.total else ""
        busy = f"  ({s.running} shard{'s' if s.running != 1 else ''} in progress)" if s.running else ""
        lines.append(f"  {s.name:<{width}}  {s.done:>5} / {s.total:<5} [{bar:<20}]{busy}")
    done = ", ".join(f"{k} {'written' if v else 'not yet'}" for k, v in st.tables.items())
    lines.append(f"  {done}")
    left = st.models_total - st.models_done
    if st.run and st.eta_seconds is not None:
        lines.append(f"models left: {left}; at this run's pace about {_duration(st.eta_seconds)} more for the models")
    elif st.run:
        lines.append(f"models left: {left}; no model finished yet in this run, so no ETA")
    return "\n".join(lines)


def _seconds_a_model(results: Path, kind: str, per_job: int) -> float | None:
    """Mean seconds a model of the earlier jobs of ``kind`` (train, unlearn) in this results folder
    took, start-up included (Snakemake's benchmark files); None where none ran yet."""
    times = []
    for f in (results / "benchmarks" / kind).glob("*.tsv") if (results / "benchmarks" / kind).is_dir() else []:
        try:
            times.append(float(f.read_text().splitlines()[1].split("\t")[0]))
        except (IndexError, ValueError, OSError):
            continue
    return sum(times) / len(times) / per_job if times else None


def plan(results: str | Path, config: Mapping) -> str:
    """What the study will make, said before a run (a dry run too): models to train, unlearn and
    score, how many are done, and, where earlier jobs in this folder measured it, about how long
    the rest of the model jobs take on one slot."""
    results = Path(results)
    found = stages(results, config)
    train = sum(s.total for s in found if "train" in s.name)
    unlearn = sum(s.total for s in found if "unlearn" in s.name)
    done = sum(s.done for s in found)
    line = (
        f"umia study {config['experiment']}: {train} models to train, {unlearn} unlearnings, "
        f"{train + unlearn} models to score; {done} done"
    )
    per = {
        "train": _seconds_a_model(results, "train", config["shard_size"]),
        "unlearn": _seconds_a_model(results, "unlearn", unlearn_shard_size(config)),
    }
    left = {k: sum(s.total - s.done for s in found if k in s.name) for k in per}
    if all(per[k] is not None for k in per if left[k]) and any(left.values()):
        total = sum(per[k] * left[k] for k in per if left[k])
        said = ", ".join(f"{per[k]:.2g} s a model to {k}" for k in per if per[k] is not None)
        line += f"; earlier jobs here took {said}: about {_duration(total)} of model jobs left (on one slot)"
    return line
