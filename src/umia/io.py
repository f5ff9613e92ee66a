"""Table schemas and file writing: the contracts between stages.

Every table is Parquet with a fixed Arrow schema (defined once here) and the experiment's config
hash in its metadata. Every file is written to a temporary name in the same folder and renamed,
so a killed job never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from umia.errors import DataError, TableError

HASH_KEY = b"umia.config_hash"
PROVENANCE_KEY = b"umia.provenance"

SCORES = pa.schema(
    [
        ("model_id", pa.int32()),
        ("stage", pa.string()),  # original | retrain | unlearned
        ("method", pa.string()),  # none (originals), retrain, or the unlearning method
        ("example_id", pa.int64()),  # pool: 0..n_pool-1; test: n_pool..n_pool+n_test-1
        ("split", pa.string()),  # pool | test
        ("label", pa.int16()),
        ("view", pa.string()),  # identity | mirror
        ("phi", pa.float32()),  # log p_y - log sum_{j != y} p_j
        ("loss", pa.float32()),  # cross-entropy
        ("correct", pa.bool_()),
    ]
)

MEMBERSHIP = pa.schema(
    [
        ("model_id", pa.int32()),
        ("example_id", pa.int64()),
        ("in_train", pa.bool_()),  # x in D_i (the original model's training set)
        ("in_forget", pa.bool_()),  # x in F_i = D_i ∩ C
    ]
)

CANDIDATES = pa.schema([("example_id", pa.int64()), ("label", pa.int16())])

PER_EXAMPLE = pa.schema(
    [
        ("method", pa.string()),
        ("attack", pa.string()),
        ("example_id", pa.int64()),
        ("label", pa.int16()),
        ("accuracy", pa.float64()),
        ("epsilon", pa.float64()),  # the NeurIPS 2023 challenge scorer's epsilon (delta 1e-5, cap 50)
        ("epsilon_single_threshold", pa.float64()),  # our stricter single-threshold one (cap 10)
        ("n_trials", pa.int32()),
    ]
)

TRAJECTORY = pa.schema(
    [
        ("model_id", pa.int32()),
        ("method", pa.string()),
        ("example_id", pa.int64()),  # a forget example of this model (x in F_i)
        ("view", pa.string()),
        ("point", pa.int16()),  # 0 = before unlearning (the original) ... rates.points = the end
        ("step", pa.int32()),  # optimiser steps taken so far
        ("total_steps", pa.int32()),  # steps the method planned (it may stop early)
        ("fraction", pa.float32()),  # point / rates.points: the share of the run
        ("phi", pa.float32()),
    ]
)

RATES = pa.schema(
    [
        ("method", pa.string()),
        ("example_id", pa.int64()),
        ("point", pa.int16()),
        ("fraction", pa.float32()),
        ("phi", pa.float64()),  # median over the models that forgot the example, of the view-mean phi
        ("z", pa.float64()),  # median of (phi - retrain mean) / retrain sd
        ("retrain_mean", pa.float64()),
        ("retrain_sd", pa.float64()),
        ("n_models", pa.int32()),
    ]
)

REACH = pa.schema(
    [
        ("method", pa.string()),
        ("example_id", pa.int64()),
        ("reach_fraction", pa.float64()),  # share of the run until phi <= retrain mean (inf: never)
        ("reach_step", pa.float64()),  # the same in optimiser steps
        ("share_reached", pa.float64()),  # share of the models in which it got there at all
        ("n_models", pa.int32()),
    ]
)

EXAMPLES = pa.schema(
    [
        ("example_id", pa.int64()),
        ("label", pa.int16()),
        ("label_name", pa.string()),
        ("height", pa.int16()),
        ("width", pa.int16()),
        ("channels", pa.int16()),
        ("pixels", pa.binary()),  # uint8, (height, width, channels) row-major; empty for text
        ("text", pa.string()),  # text task: the cleaned review (height = width = channels = 0); null for images
    ]
)

# The text task's per-sequence statistics beside the scores table (phi and loss are there), for the
# LM population attacks: one row per (model, example), every pool and test example.
LM_STATS = pa.schema(
    [
        ("model_id", pa.int32()),
        ("stage", pa.string()),
        ("method", pa.string()),
        ("example_id", pa.int64()),
        ("split", pa.string()),
        ("label", pa.int16()),
        ("min_k", pa.float32()),  # Min-K% probability: mean of the lowest k-share of token log-probs
        ("zlib_ratio", pa.float32()),  # loss / zlib-compressed length in bytes of the text the model saw
        ("token_accuracy", pa.float32()),  # share of next tokens that are the model's top-1 prediction
        ("n_tokens", pa.int32()),  # real next-token predictions (the review cut to max_tokens)
    ]
)

ROC = pa.schema([("method", pa.string()), ("attack", pa.string()), ("fpr", pa.float64()), ("tpr", pa.float64())])
# the tables the gather rule collects from shard files, by the name its rules give them
TABLES = {"scores": SCORES, "trajectory": TRAJECTORY, "lm_stats": LM_STATS}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield str(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; it replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def to_arrow(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    missing = [n for n in schema.names if n not in df.columns]
    if missing:
        raise TableError(f"table lacks columns {missing}")
    return pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)


def write_table(
    df: pd.DataFrame | pa.Table,
    path: str | os.PathLike,
    schema: pa.Schema,
    config_hash: str,
    provenance: str | None = None,
) -> None:
    """Write ``df`` as Parquet with ``schema`` and the config hash (and, from model jobs, where
    they ran: a JSON ``provenance``), atomically."""
    table = df if isinstance(df, pa.Table) else to_arrow(df, schema)
    meta = {HASH_KEY: config_hash.encode()}
    if provenance is not None:
        meta[PROVENANCE_KEY] = provenance.encode()
    table = table.cast(schema).replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def table_hash(path: str | os.PathLike) -> str | None:
    """The config hash a table was written with (None where it carries none)."""
    found = (pq.read_schema(path).metadata or {}).get(HASH_KEY)
    return found.decode() if found else None


def read_table(
    path: str | os.PathLike,
    schema: pa.Schema,
    config_hash: str | None,
    columns: list[str] | None = None,
) -> pa.Table:
    """Read a Parquet table, refusing one of another schema or another config.

    ``columns`` reads only those (string columns come dictionary-encoded, which keeps a
    paper-scale score table of 30 M rows in well under a GiB).
    """
    try:
        found_schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise TableError(f"{path}: not a readable Parquet file ({e}); delete it and rerun to rebuild it") from e
    found = (found_schema.metadata or {}).get(HASH_KEY, b"").decode()
    if config_hash is not None and found != config_hash:
        raise TableError(
            f"{path}: written by another config (hash {found or 'none'}, this config {config_hash}); "
            "use a new experiment name, or move the old results away"
        )
    missing = [n for n in schema.names if n not in found_schema.names]
    if missing:
        raise TableError(f"{path}: lacks columns {missing}; it was not written by this version of umia")
    names = columns or schema.names
    strings = [n for n in names if schema.field(n).type == pa.string()]
    try:
        table = pq.read_table(path, columns=names, read_dictionary=strings if columns else None)
    except (OSError, pa.ArrowException) as e:
        raise TableError(f"{path}: not a readable Parquet file ({e}); delete it and rerun to rebuild it") from e
    if columns:
        return table
    return table.select(schema.names).cast(schema)


def codes(column, order: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Integer codes of a string column (plain or dictionary-encoded) and the names they stand for."""
    cat = pd.Categorical(column.to_pandas() if hasattr(column, "to_pandas") else column)
    if order is not None:
        cat = cat.set_categories(list(order))
    return np.asarray(cat.codes), [str(c) for c in cat.categories]


def check_sha256(path: Path, expected: str) -> None:
    """Stop with one line unless the file at ``path`` has the sha256 ``expected`` (``dataset.sha256``)."""
    if path.is_dir():
        raise DataError(f"dataset.sha256 is set but {path} is a folder; a checksum covers one file")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected:
        raise DataError(
            f"{path}: sha256 {h.hexdigest()[:16]}... does not match dataset.sha256 {expected[:16]}...; "
            "the file is corrupted or another version: fetch it again"
        )


def fingerprint(path: str | os.PathLike) -> str:
    """What a local dataset file or folder is, cheaply (no file is read): size and modification
    time of the file, or of every file under the folder, hashed. For datasets whose path *is* the
    data (npz, folder): a new file under the same name is a new experiment."""
    p = Path(path)
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if f != p else f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]
