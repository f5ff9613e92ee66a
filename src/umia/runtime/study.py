"""A finished study is never replaced by a config change without a word.

A run stamps its results folder with the part of its config that defines what models and scores
are (``umia.config.result_part``), in ``.umia-study.json``. A later run whose result-defining
config differs stops before any job, with one line naming the changed keys and the two ways on: a
new experiment name (both studies kept), or ``--config overwrite=true`` (the finished study is
replaced). What the design meant to extend a study is not result-defining and needs neither:
growing ``n_models``, adding a method, widening a tuning grid. A folder from before the stamp is
judged by the config hash its tables carry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from umia import io
from umia.config import changed_keys, config_hash, result_part
from umia.errors import UmiaError

STAMP = ".umia-study.json"


class StudyChanged(UmiaError):
    """The results folder holds a study computed with another result-defining config."""


def _fmt(v) -> str:
    return "unset" if v is None else json.dumps(v, default=str) if isinstance(v, list | dict) else str(v)


def check(results: str | Path, config: Mapping, overwrite: bool = False) -> None:
    """Stop (``StudyChanged``) if ``results`` holds a study of another result-defining config and
    ``overwrite`` is not given; do nothing for a new folder or the same study."""
    if overwrite:
        return
    results = Path(results)
    stamp = results / STAMP
    if stamp.is_file():
        old = json.loads(stamp.read_text())
        new = json.loads(json.dumps(result_part(config), default=str))
        changes = changed_keys(old["config"], new)
        if not changes:
            return
        shown = ", ".join(f"{k} {_fmt(a)} -> {_fmt(b)}" for k, a, b in changes[:4])
        more = f" and {len(changes) - 4} more" if len(changes) > 4 else ""
        what = f"another config ({shown}{more})"
    else:
        tables = results / "plan/candidates.parquet"  # every study has it; older ones no stamp
        if not tables.is_file():
            return
        found = io.table_hash(tables)
        if found in (None, config_hash(config)):
            return
        what = f"another config (hash {found}, this config {config_hash(config)})"
    raise StudyChanged(
        f"{results} holds a finished study computed with {what}; to keep it, run the new config as "
        f"another experiment (set experiment: to a new name), or replace it with --config overwrite=true"
    )


def stamp(results: str | Path, config: Mapping) -> None:
    """Record the result-defining config of the study in ``results`` and the run's whole config (at
    the start of a run)."""
    path = Path(results) / STAMP
    run = {k: v for k, v in config.items() if k != "overwrite"}  # the whole run, for umia status and load
    blob = {"config_hash": config_hash(config), "config": result_part(config), "run": run}
    with io.atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(blob, indent=1, sort_keys=True, default=str) + "\n")
