"""A shard job's finished models, kept as they finish, so a job that is killed, preempted or runs
out of time resumes where it stopped instead of redoing the whole shard.

Each finished model is one folder, ``<scratch>/model-<id>/``, beside nothing else: its tables
(``<name>.parquet``, the rows the shard's outputs will hold), its weights (``state.pt``, where the
job keeps a checkpoint), its trajectory (``trajectory.npz``, unlearning) and, written last,
``done.json`` stamped with the config hash and the model id. The folder is written under a
hidden name and renamed into place, so a kill never leaves a model that looks finished. The
scratch of a shard lives at ``<results>/scratch/...`` (the shard's path with ``shards`` replaced)
and is removed once the shard's outputs are written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

log = logging.getLogger(__name__)

STAMP = "done.json"


@dataclass
class Partial:
    """One finished model of a shard: its tables, weights (or None) and trajectory records."""

    tables: dict[str, pd.DataFrame]
    state: dict | None = None
    trajectory: list = field(default_factory=list)


def folder_for(scores_path: str) -> Path:
    """The scratch folder of the shard whose score file is ``scores_path``
    (``.../shards/<stage>/<method>/shard-000.parquet`` -> ``.../scratch/<stage>/<method>/shard-000``;
    a file outside a ``shards`` folder: ``<name>.scratch`` beside it)."""
    p = Path(scores_path)
    parts = list(p.with_suffix("").parts)
    if "shards" not in parts:
        return p.with_name(p.stem + ".scratch")
    i = len(parts) - 1 - parts[::-1].index("shards")
    parts[i] = "scratch"
    return Path(*parts)


class Scratch:
    """The finished models of one shard job (``model_ids``) under ``folder``."""

    def __init__(self, folder: str | os.PathLike, config_hash: str, model_ids: Iterable[int]):
        self.folder, self.config_hash, self.model_ids = Path(folder), config_hash, sorted(model_ids)

    def _dir(self, model_id: int) -> Path:
        return self.folder / f"model-{model_id:05d}"

    def save(self, model_id: int, part: Partial) -> None:
        """Keep a finished model (atomically: a hidden folder, renamed into place when complete)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".model-{model_id:05d}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            for name, frame in part.tables.items():
                frame.to_parquet(tmp / f"{name}.parquet", index=False)
            if part.state is not None:
                torch.save(part.state, tmp / "state.pt")
            if part.trajectory:
                _save_trajectory(tmp / "trajectory.npz", part.trajectory)
            stamp = {"config_hash": self.config_hash, "model_id": model_id, "tables": sorted(part.tables)}
            stamp |= {"state": part.state is not None, "trajectory": bool(part.trajectory)}
            (tmp / STAMP).write_text(json.dumps(stamp))
            final = self._dir(model_id)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def load(self) -> dict[int, Partial]:
        """The finished models kept here, by id. Anything that is not one (a kill's hidden
        debris, a folder of another config, a model outside the shard, an unreadable file) is
        removed, with a warning for all but the debris, and its model is recomputed."""
        found: dict[int, Partial] = {}
        if not self.folder.is_dir():
            return found
        for entry in sorted(self.folder.iterdir()):
            if entry.name.startswith("."):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
                continue
            model_id, why = self._check(entry)
            if why is None:
                try:
                    found[model_id] = self._read(entry)
                    continue
                except Exception as e:  # a truncated or corrupted file: recompute the model
                    why = f"does not read ({type(e).__name__}: {e})"
            log.warning(
                "scratch %s %s: recomputing%s", entry, why, f" model {model_id}" if model_id is not None else ""
            )
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        return found

    def _check(self, entry: Path) -> tuple[int | None, str | None]:
        try:
            model_id = int(entry.name.removeprefix("model-"))
        except ValueError:
            return None, "is not a model's folder"
        if model_id not in self.model_ids:
            return model_id, f"holds model {model_id}, not one of this shard's ({', '.join(map(str, self.model_ids))})"
        try:
            stamp = json.loads((entry / STAMP).read_text())
        except (OSError, ValueError) as e:
            return model_id, f"has no readable {STAMP} ({type(e).__name__}): it is incomplete"
        if stamp.get("config_hash") != self.config_hash:
            return model_id, f"was written by another config (hash {stamp.get('config_hash')}, this {self.config_hash})"
        if stamp.get("model_id") != model_id:
            return model_id, f"is stamped model {stamp.get('model_id')}"
        return model_id, None

    def _read(self, entry: Path) -> Partial:
        stamp = json.loads((entry / STAMP).read_text())
        tables = {name: pd.read_parquet(entry / f"{name}.parquet") for name in stamp["tables"]}
        state = torch.load(entry / "state.pt", map_location="cpu", weights_only=True) if stamp["state"] else None
        trajectory = _load_trajectory(entry / "trajectory.npz") if stamp["trajectory"] else []
        return Partial(tables, state, trajectory)

    def clear(self) -> None:
        """Remove the scratch (the shard's outputs are complete)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        for parent in list(self.folder.parents)[:3]:  # empty <method>/<stage>/scratch folders too
            try:
                parent.rmdir()
            except OSError:
                break


def _save_trajectory(path: Path, records: list) -> None:
    """Records (model_id, example ids, point, step, total, phi (V, n)) of one model, as arrays."""
    ids = records[0][1]
    with open(path, "wb") as f:  # inside the model's hidden folder: atomic with it
        np.savez(
            f,
            model_id=np.array([r[0] for r in records]),
            ids=ids,
            point=np.array([r[2] for r in records]),
            step=np.array([r[3] for r in records]),
            total=np.array([r[4] for r in records]),
            phi=np.stack([r[5] for r in records]),
        )


def _load_trajectory(path: Path) -> list:
    with np.load(path) as z:
        return [
            (int(m), z["ids"], int(p), int(s), int(t), phi)
            for m, p, s, t, phi in zip(z["model_id"], z["point"], z["step"], z["total"], z["phi"], strict=True)
        ]
