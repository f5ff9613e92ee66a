"""umia.io: typed Parquet tables stamped with the config hash, written atomically."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from umia import io
from umia.io import TableError, atomic_path, read_table, write_table


def _scores(n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "model_id": np.repeat([0, 1], n // 2).astype(np.int64),  # wider than the schema: cast
            "stage": "original",
            "method": "none",
            "example_id": np.arange(n),
            "split": ["pool"] * (n - 2) + ["test"] * 2,
            "label": rng.integers(0, 10, n),
            "view": "identity",
            "phi": rng.normal(size=n),
            "loss": rng.exponential(size=n),
            "correct": rng.random(n) < 0.5,
            "extra": 1,  # columns outside the schema are dropped
        }
    )


def test_round_trip_keeps_values_and_schema_types(tmp_path):
    df = _scores()
    path = tmp_path / "scores.parquet"
    write_table(df, path, io.SCORES, "abc123")
    table = read_table(path, io.SCORES, "abc123")
    assert table.schema.equals(io.SCORES)
    out = table.to_pandas()
    numeric = {
        "model_id": "int32",
        "example_id": "int64",
        "label": "int16",
        "phi": "float32",
        "loss": "float32",
        "correct": "bool",
    }
    assert {c: str(out[c].dtype) for c in numeric} == numeric
    for c in ("stage", "method", "split", "view"):  # object before pandas 3, str after
        assert pd.api.types.is_string_dtype(out[c]), (c, out[c].dtype)
    assert list(out.columns) == io.SCORES.names
    np.testing.assert_array_equal(out.model_id, df.model_id)
    np.testing.assert_array_equal(out.label, df.label)
    np.testing.assert_array_equal(out.correct, df.correct)
    np.testing.assert_array_equal(out.split, df.split)
    np.testing.assert_allclose(out.phi, df.phi.astype(np.float32))
    assert pq.read_schema(path).metadata[io.HASH_KEY] == b"abc123"


def test_read_without_hash_check(tmp_path):
    path = tmp_path / "m.parquet"
    df = pd.DataFrame(
        {
            "model_id": [0, 0],
            "example_id": [0, 1],
            "in_train": [True, False],
            "in_forget": [False, False],
        }
    )
    write_table(df, path, io.MEMBERSHIP, "h1")
    assert read_table(path, io.MEMBERSHIP, None).num_rows == 2


def test_refuses_other_config(tmp_path):
    path = tmp_path / "scores.parquet"
    write_table(_scores(), path, io.SCORES, "aaaa")
    with pytest.raises(TableError, match="another config"):
        read_table(path, io.SCORES, "bbbb")


def test_refuses_missing_columns(tmp_path):
    path = tmp_path / "c.parquet"
    write_table(pd.DataFrame({"example_id": [1, 2], "label": [0, 1]}), path, io.CANDIDATES, "h")
    with pytest.raises(TableError, match="lacks columns"):
        read_table(path, io.MEMBERSHIP, "h")
    with pytest.raises(TableError, match="lacks columns"):
        write_table(pd.DataFrame({"example_id": [1]}), tmp_path / "x.parquet", io.CANDIDATES, "h")
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.99])
def test_refuses_truncated_file_with_one_line_error(tmp_path, keep):
    """A file cut short (a killed copy, a full disk): a one-line TableError, not an Arrow trace."""
    path = tmp_path / "scores.parquet"
    write_table(_scores(200), path, io.SCORES, "h")
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(TableError) as info:
        read_table(path, io.SCORES, "h")
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg


def test_missing_file_is_table_error(tmp_path):
    with pytest.raises(TableError):
        read_table(tmp_path / "nope.parquet", io.SCORES, "h")


def test_atomic_path_leaves_nothing_when_block_raises(tmp_path):
    """A failing writer leaves neither the target nor its temporary file."""
    target = tmp_path / "sub" / "out.bin"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(target) as tmp:
            assert os.path.dirname(tmp) == str(target.parent)  # same folder: rename is atomic
            with open(tmp, "wb") as f:
                f.write(b"partial")
            raise RuntimeError("killed")
    assert not target.exists()
    assert os.listdir(target.parent) == []


def test_atomic_path_keeps_old_file_when_block_raises(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                f.write(b"new, half written")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_path_renames_on_success(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_path(target) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"new")
        assert target.read_bytes() == b"old"  # not visible until the block ends
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_failed_write_table_leaves_no_file(tmp_path):
    """A value that cannot be cast (a string label) fails before anything lands at the path."""
    df = _scores()
    df["label"] = "cat"
    with pytest.raises((pa.ArrowException, TableError)):
        write_table(df, tmp_path / "s.parquet", io.SCORES, "h")
    assert os.listdir(tmp_path) == []
