"""The ``umia`` command as a researcher meets it: the installed package (a wheel of the repository,
with the workflow inside it) run from an empty folder outside the repository, on a config of their
own; then ``umia status``, ``umia report``, ``umia config`` and ``umia.load`` on what it made, and
the bad inputs, each one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
STUDY = {
    "experiment": "mine",
    "device": "cpu",
    "n_models": 4,
    "shard_size": 4,
    "candidates": {"mode": "random", "size": 60},
    "methods": ["finetune"],
    "attacks": {"n_folds": 2, "n_bootstrap": 20},
    "train": {"epochs": 10},
    "keep_checkpoints": False,
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """The repository built into a wheel and unpacked into a folder first on the path: the umia a
    `pip install` gives (its workflow is package data), beside this environment's dependencies."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=tmp,
    )
    (wheel,) = tmp.glob("umia-*.whl")
    site = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)], check=True
    )
    assert (site / "umia/_workflow/Snakefile").is_file() and (site / "umia/_workflow/config/config.yaml").is_file()
    return {**os.environ, "PYTHONPATH": str(site)}


def umia(*args: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "umia.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def run_here(installed, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``umia run mine.yaml`` in an empty folder outside the repository."""
    here = tmp_path_factory.mktemp("project")
    (here / "mine.yaml").write_text(yaml.safe_dump(STUDY))
    proc = umia("run", "mine.yaml", "--cores", "2", cwd=here, env=installed)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return here, proc


def test_umia_run_from_an_empty_folder_runs_the_study_to_its_report(run_here, installed):
    here, proc = run_here
    results = here / "results/mine"
    assert (results / "report/summary.html").is_file() and (results / "tables/summary.csv").is_file()
    out = proc.stdout + proc.stderr
    assert str(installed["PYTHONPATH"]) in out  # the packaged workflow ran, not the repository's
    assert "per method (U-LiRA, per example" in out and "report: results/mine/report/summary.html" in out
    assert "Shell command: None" not in out


def test_status_report_config_and_load_read_the_study(run_here, installed):
    here, _ = run_here
    st = umia("status", cwd=here, env=installed)  # the only study under ./results
    assert st.returncode == 0, st.stderr
    assert "train originals" in st.stdout and "4 / 4" in st.stdout and "unlearn (1 methods)" in st.stdout
    assert "no run is going on" in st.stdout and "report page written" in st.stdout
    rep = umia("report", "results/mine", cwd=here, env=installed)
    assert rep.stdout.startswith("controls:") and "finetune" in rep.stdout and "report: results/mine" in rep.stdout
    cfg = yaml.safe_load(umia("config", "mine.yaml", cwd=here, env=installed).stdout)
    assert cfg["n_models"] == 4 and cfg["train"]["epochs"] == 10 and cfg["train"]["batch_size"] == 64  # filled
    code = "import umia, sys; s = umia.load(sys.argv[1]); print(len(s.summary), s.config['n_models'], s.tables)"
    loaded = subprocess.run(
        [sys.executable, "-c", code, str(here / "results/mine")], env=installed, capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr
    n_rows, n_models, tables = loaded.stdout.split(" ", 2)
    assert int(n_models) == 4 and int(n_rows) > 0 and "per_example" in tables


@pytest.mark.parametrize(
    "args, line",
    [
        (("run", "nothere.yaml"), "umia: config file nothere.yaml does not exist; give the path of your YAML config"),
        (("status", "."), "holds no umia study a run has started (no .umia-study.json); give the folder of one"),
        (("status",), "umia: no study under ./results; give its folder, e.g. umia status results/digits"),
        (("config", "bad.yaml"), "umia: config: unknown key 'n_model'; did you mean 'n_models'?"),
        (("run", "--profile", "nosuch"), "umia: profile 'nosuch' is neither a folder nor one of umia's"),
    ],
)
def test_bad_input_is_one_line(installed, tmp_path, args, line):
    (tmp_path / "bad.yaml").write_text("n_model: 4\n")
    proc = umia(*args, cwd=tmp_path, env=installed)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert line in err and "\n" not in err and "Traceback" not in err, err


def test_load_refuses_tables_of_two_studies(run_here, tmp_path):
    """umia.load on a folder whose tables carry different config hashes: one line naming them."""
    import shutil

    import pyarrow.parquet as pq

    import umia
    from umia.api import StudyError

    here, _ = run_here
    mixed = tmp_path / "mixed"
    shutil.copytree(here / "results/mine", mixed)
    t = pq.read_table(mixed / "tables/roc.parquet")
    pq.write_table(
        t.replace_schema_metadata({**t.schema.metadata, b"umia.config_hash": b"0000"}), mixed / "tables/roc.parquet"
    )
    with pytest.raises(StudyError, match="mixes tables of different studies .*tables/roc.parquet: 0000"):
        umia.load(mixed)
    with pytest.raises(StudyError, match="holds no umia study"):
        umia.load(tmp_path)
