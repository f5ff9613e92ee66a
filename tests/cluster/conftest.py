"""Fixtures for running the workflow through SLURM (both profiles), killing and resuming it."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests/cluster/small.yaml"
TABLES = ("tables/summary.csv", "tables/per_example.parquet", "tables/roc.parquet", "scores", "plan/membership.parquet")


def snakemake_cmd(results: Path, *args: str, config: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--configfile",
        str(SMALL),
        "--config",
        f"results_dir={results}",
        *config,
        *args,
    ]


def run(cmd: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def read(results: Path, name: str) -> pd.DataFrame:
    path = results / "small" / name
    return pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)


def assert_same_tables(a: Path, b: Path) -> None:
    for name in TABLES:
        x, y = read(a, name), read(b, name)
        pd.testing.assert_frame_equal(x, y, check_exact=True, obj=name)


def slurm_ready() -> str | None:
    """None if a SLURM cluster answers here, else why not."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return "no SLURM client (sbatch, sinfo) on this machine"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"sinfo failed: {e}"
    if not any(s.strip() in ("idle", "mixed", "allocated") for s in out.splitlines()):
        return f"no SLURM node is up (sinfo says {out.strip() or 'nothing'})"
    return None


@pytest.fixture(scope="session")
def slurm():
    why = slurm_ready()
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the cluster tests, but {why}; .ci/run starts the cluster with .ci/slurm-up")
        pytest.skip(f"needs a SLURM cluster: {why} (start one with `bash .ci/slurm-up`, as root)")


def cluster_profile(name: str, tmp: Path) -> Path:
    """The repository's profile as a user edits it for this one-node cluster: its partition,
    and memory that fits the node."""
    prof = tmp / f"profile-{name}"
    shutil.copytree(ROOT / "profiles" / name, prof)
    cfg = prof / "config.v8+.yaml"
    partition = subprocess.run(["sinfo", "-h", "-o", "%R"], capture_output=True, text=True).stdout.split()[0]
    text = cfg.read_text().replace('slurm_partition: "gpu"', f'slurm_partition: "{partition}"')
    text = text.replace("--output=slurm-logs/", f"--output={tmp}/slurm-logs/")
    for mem in ("32000", "16000", "8000"):
        text = text.replace(f"{mem} * attempt", "2000 * attempt")
    cfg.write_text(text)
    return prof


@pytest.fixture(scope="session")
def local_run(tmp_path_factory) -> Path:
    """The small experiment run locally and uninterrupted: the reference for every other run."""
    results = tmp_path_factory.mktemp("local")
    run(snakemake_cmd(results, "--cores", "2"))
    return results


def kill_when(cmd: list[str], ready, timeout: float = 600) -> None:
    """Start ``cmd`` in its own process group and SIGKILL the whole group (Snakemake and every
    job it started) as soon as ``ready()`` is true."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.monotonic()
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError("the run finished before the kill point was reached")
            if time.monotonic() - t0 > timeout:
                raise AssertionError("the kill point was never reached")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
