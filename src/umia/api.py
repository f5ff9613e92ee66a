"""``umia.load``: a finished (or running) study's tables as DataFrames, with its config and
provenance, read from its results folder, and its figures drawn from them.

    study = umia.load("results/cifar10")
    study.summary                      # one row per (method, attack): accuracy, AUC, TPR, epsilons
    study.per_example.query("attack == 'ulira'")
    study.figures("my-figures/")       # the study's figures, from the tables alone

Every table is the output contract's (docs/results.md); a table the study does not
have (rates without unlearning methods, tuning without a grid) is None.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from umia import io, registry
from umia.errors import UmiaError
from umia.runtime import study

# name -> path in the results folder (the output contract)
TABLES = {
    "summary": "tables/summary.csv",
    "per_example": "tables/per_example.parquet",
    "roc": "tables/roc.parquet",
    "utility": "tables/utility.csv",
    "findings": "tables/findings.csv",
    "rates": "tables/rates.parquet",
    "reach": "tables/reach.parquet",
    "tuning": "tables/tuning.csv",
    "efficiency": "tables/efficiency.csv",
    "candidates": "plan/candidates.parquet",
    "membership": "plan/membership.parquet",
    "examples": "plan/examples.parquet",
}
HASHED = ("plan/candidates.parquet", "plan/membership.parquet", "plan/examples.parquet", "scores/scores.parquet")
HASHED += ("tables/per_example.parquet", "tables/roc.parquet", "tables/rates.parquet", "tables/reach.parquet")


class StudyError(UmiaError):
    """A folder that holds no study, or tables of different studies."""


@dataclass
class Study:
    """One study's results folder. Tables are read on first use; ``scores()`` reads the long score
    table (one row per model, view and example: large) when asked."""

    path: Path
    config_hash: str
    config: dict | None = None  # the run's resolved config, where the run recorded it
    _cache: dict = field(default_factory=dict, repr=False)

    def table(self, name: str) -> pd.DataFrame | None:
        """A table of the output contract by name (``TABLES``); None where the study has none."""
        if name not in TABLES:
            raise KeyError(f"no table {name!r}; the tables are {', '.join(TABLES)}")
        if name not in self._cache:
            f = self.path / TABLES[name]
            self._cache[name] = (
                None if not f.is_file() else pd.read_csv(f) if f.suffix == ".csv" else pd.read_parquet(f)
            )
        return self._cache[name]

    def __getattr__(self, name: str) -> pd.DataFrame | None:
        if name in TABLES:
            return self.table(name)
        raise AttributeError(name)

    def scores(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The score table (io.SCORES), or some of its columns."""
        return io.read_table(
            self.path / "scores/scores.parquet", io.SCORES, self.config_hash, columns=columns
        ).to_pandas()

    @cached_property
    def provenance(self) -> list | dict:
        """Where the models were made: code version, machines, GPUs (the score table's stamps, one per
        kind of job that made models)."""
        f = self.path / "scores/scores.parquet"
        raw = (pq.read_schema(f).metadata or {}).get(io.PROVENANCE_KEY) if f.is_file() else None
        return json.loads(raw) if raw else {}

    @property
    def tables(self) -> list[str]:
        """The tables this study has."""
        return [n for n, p in TABLES.items() if (self.path / p).is_file()]

    def figures(self, out_dir: str | Path, names: list[str] | None = None) -> list[str]:
        """Draw the study's figures (or ``names``) into ``out_dir`` from its tables, methods named by
        the config's ``labels``; returns the names."""
        from umia.report.figures import figures  # matplotlib: only when drawing

        dataset = (self.config or {}).get("dataset", {}).get("name")
        kind = registry.task_of(dataset) if dataset in registry.DATASETS else "image"
        paths = {n: str(self.path / p) if (self.path / p).is_file() else None for n, p in TABLES.items()}
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return figures(
            summary=paths["summary"],
            per_example=paths["per_example"],
            roc_table=paths["roc"],
            examples=paths["examples"],
            out_dir=str(out_dir),
            rates_table=paths["rates"],
            reach_table=paths["reach"],
            names=names,
            task=kind,
            utility_table=paths["utility"],
            tuning_table=paths["tuning"],
            efficiency_table=paths["efficiency"],
            labels=(self.config or {}).get("labels"),
        )


def load(path: str | Path) -> Study:
    """The study in ``path`` (``results/<experiment>``). One line (``StudyError``) where the folder
    holds no study, or where its tables carry different config hashes (tables of two studies)."""
    path = Path(path)
    found = {rel: io.table_hash(path / rel) for rel in HASHED if (path / rel).is_file()}
    if not found and not (path / TABLES["summary"]).is_file():
        raise StudyError(
            f"{path} holds no umia study (no plan/ or tables/); give the folder of one, e.g. results/digits"
        )
    hashes = sorted({h for h in found.values() if h})
    if len(hashes) > 1:
        by = {h: [rel for rel, x in found.items() if x == h] for h in hashes}
        said = "; ".join(f"{', '.join(v)}: {h}" for h, v in by.items())
        raise StudyError(
            f"{path} mixes tables of different studies (config hashes {said}); rerun the study with snakemake "
            "(or umia run) to rebuild the stale ones, or move the strays away"
        )
    stamp = path / study.STAMP
    config = json.loads(stamp.read_text()).get("run") if stamp.is_file() else None
    return Study(path, hashes[0] if hashes else "", config)


__all__ = ["Study", "StudyError", "load"]
