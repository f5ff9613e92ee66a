import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests/workflow/tiny.yaml"
# plug-ins evaluated beside the built-in methods: the example (SSD, no optimiser steps) and a test
# method with an optimiser of its own; copied out of the repository, as a user's files would be
PLUGIN_FILES = (ROOT / "examples/ssd.py", ROOT / "tests/workflow/plugins/adam_ascent.py")
PLUGIN_METHODS = ("ssd", "adam_ascent")


def copy_plugins(folder: Path) -> dict[str, Path]:
    """The plug-in files copied into ``folder`` (outside the repository): name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    return {f.stem: Path(shutil.copy(f, folder / f.name)) for f in PLUGIN_FILES}


def plugin_entries(files: dict[str, Path]) -> list[str]:
    """The config's method entries of the plug-ins (``path.py:function``)."""
    return [f"{files['ssd']}:ssd", f"{files['adam_ascent']}:adam_ascent"]


def snakemake(*args: str, cwd: Path = ROOT, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's workflow, as a user would from its root (``env``: its
    environment, default this one's)."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny experiment, run once for the session; returns its results folder."""
    results = tmp_path_factory.mktemp("results")
    files = copy_plugins(plugin_folder(results / "tiny"))
    methods = yaml.safe_load(TINY.read_text())["methods"] + plugin_entries(files)
    (results / "run.yaml").write_text(yaml.safe_dump({"results_dir": str(results), "methods": methods}))
    proc = snakemake(*tiny_args(results / "tiny"))
    (results / "terminal.txt").write_text(proc.stdout + proc.stderr)  # what the user saw
    return results / "tiny"


def plugin_folder(tiny_run: Path) -> Path:
    """Where the tiny run's plug-in files are (beside its results folder, outside the repository)."""
    return tiny_run.parent.parent / f"{tiny_run.parent.name}-plugins"


def tiny_args(tiny_run: Path) -> list[str]:
    """The config files of the tiny run (tiny.yaml, then its results folder and plug-ins)."""
    return ["--configfile", str(TINY), str(tiny_run.parent / "run.yaml")]
