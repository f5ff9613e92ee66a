"""The gather stage: the shard files of a table (scores, LM statistics, trajectories) streamed
into one Parquet file, each checked against the schema and the config hash first."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from umia import io
from umia.runtime import provenance

log = logging.getLogger(__name__)


def _readable_schema(path: str) -> pa.Schema:
    """A shard file's schema; a file that does not read (cut short by a crash on a filesystem
    without atomic renames, say) is set aside as ``<name>.broken``, so the next run redoes its job,
    and the gather stops with one line saying so."""
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        aside = f"{path}.broken"
        os.replace(path, aside)
        raise io.TableError(
            f"{path}: not a readable Parquet file ({type(e).__name__}); set aside as {Path(aside).name}: "
            "run snakemake again and its job is redone"
        ) from e


def gather(*, parts: Sequence[str], out: str, config_hash: str, schema: pa.Schema = io.SCORES) -> None:
    """Concatenate shard files (scores, or trajectories) into one Parquet file, streaming one part
    at a time.

    Every part is checked against the schema and the config hash first: a part from another
    config stops the gather before anything is written.
    """
    stamps = []
    for p in parts:
        meta = _readable_schema(p).metadata or {}
        if io.PROVENANCE_KEY in meta:
            stamps.append(meta[io.PROVENANCE_KEY].decode())
        found = meta.get(io.HASH_KEY, b"").decode()
        if found != config_hash:
            raise io.TableError(
                f"{p}: written by another config (hash {found or 'none'}, this config {config_hash}); "
                "use a new experiment name, or move the old results away"
            )
    meta = {io.HASH_KEY: config_hash.encode()}
    if stamps:
        meta[io.PROVENANCE_KEY] = provenance.merge(stamps).encode()
    base, schema = schema, schema.with_metadata(meta)
    rows = 0
    with io.atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for p in parts:
            table = io.read_table(p, base, config_hash).replace_schema_metadata(schema.metadata)
            writer.write_table(table)
            rows += table.num_rows
    log.info("gathered %d rows from %d shard files", rows, len(parts))
