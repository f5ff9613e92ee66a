"""benchmarks/same_tables.py, which shows that a refactoring moved no number: it finds a changed
value, a missing table and a changed config hash, and ignores only the provenance stamp."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from umia import io

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("same_tables", ROOT / "benchmarks/same_tables.py")
same_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(same_tables)


def _results(root: Path, phi: float = 0.5, stamp: str = "a", config_hash: str = "h") -> Path:
    df = pd.DataFrame({"example_id": np.arange(3), "label": np.array([0, 1, 0])})
    io.write_table(df, root / "plan/candidates.parquet", io.CANDIDATES, config_hash, stamp)
    (root / "tables").mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"method": ["none"], "accuracy": [phi]}).to_csv(root / "tables/summary.csv", index=False)
    return root


def test_same_tables_apart_from_provenance(tmp_path):
    a = _results(tmp_path / "a", stamp='{"commit": "1"}')
    b = _results(tmp_path / "b", stamp='{"commit": "2"}')
    assert same_tables.compare(a, b) == []
    assert same_tables.main([str(a), str(b)]) == 0


def test_a_changed_value_a_missing_table_and_another_hash_are_differences(tmp_path):
    a = _results(tmp_path / "a")
    assert same_tables.compare(a, _results(tmp_path / "b", phi=0.6)) == ["tables/summary.csv: the CSV files differ"]
    (problem,) = same_tables.compare(a, _results(tmp_path / "c", config_hash="other"))
    assert problem.startswith("plan/candidates.parquet: metadata differs")
    (tmp_path / "c/tables/summary.csv").unlink()
    assert f"only in {a}: tables/summary.csv" in same_tables.compare(a, tmp_path / "c")
    assert same_tables.main([str(a), str(tmp_path / "b")]) == 1
    assert same_tables.compare(tmp_path / "empty", tmp_path / "empty")[-1].endswith(
        "no tables (is it a results folder, e.g. results/<experiment>?)"
    )
