"""Kill the whole run (SIGKILL to Snakemake and every job) at several points, resume with the
README's command, and get the same tables as an uninterrupted run; grow N and reuse everything."""

import pyarrow.parquet as pq
import pytest

from .conftest import assert_same_tables, kill_when, run, snakemake_cmd

pytestmark = pytest.mark.workflow


def _exists(results, pattern):
    return lambda: any((results / "small").glob(pattern))


KILL_POINTS = (
    "shards/original/none/shard-000.parquet",  # mid-training: one original shard done
    "shards/unlearned/*/shard-*.parquet",  # mid-unlearning
    "scores/scores.parquet",  # during the attacks
)


def test_kill_and_resume_gives_the_same_tables(tmp_path, local_run):
    """One run killed at three points in turn (each kill interrupts the resumed run of the last),
    then resumed to the end."""
    results = tmp_path / "results"
    cmd = snakemake_cmd(results, "--cores", "2")
    for point in KILL_POINTS:
        kill_when(cmd, _exists(results, point))
        # nothing half-written under a final name: every parquet that exists is complete and
        # readable; a killed writer may leave a hidden temporary (.name.tmp-PID): never a final
        # name, and the Parquet dataset reader skips hidden files
        for f in (results / "small").rglob("*.parquet"):
            pq.read_metadata(f)
        # the README's resume after a kill: release Snakemake's lock, then the same command
        # (rerun-incomplete is in the profile)
        run([*cmd, "--unlock"])
    run(cmd)
    assert_same_tables(results, local_run)


def test_growing_n_reuses_every_finished_model(tmp_path, local_run):
    results = tmp_path / "results"
    run(snakemake_cmd(results, "--cores", "2", config=("n_models=4",)))
    first = {p: p.stat().st_mtime_ns for p in (results / "small/shards").rglob("*.parquet")}
    # scores of original, retrain and two methods, and the two methods' trajectories: one shard each
    assert len(first) == 6
    proc = run(snakemake_cmd(results, "--cores", "2"))
    for p, t in first.items():
        assert p.stat().st_mtime_ns == t, f"{p} was recomputed"
    assert "train_original" in proc.stdout + proc.stderr
    # the grown experiment equals one run at N=8 from the start
    assert_same_tables(results, local_run)
