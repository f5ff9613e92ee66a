"""benchmarks/replay.py: a run's jobs replayed on more GPU slots, on a small Snakemake log with
known answers (dependencies through files, through a checkpoint, slots and cores)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LOG = """\
Job stats:
job          count
---------  -------
prep             1
train_original   2
pick             1
gather           1
total            5

[Thu Dec  3 10:00:00 2026]
localrule prep:
    output: r/data.npz
    jobid: 1
    resources: tmpdir=/tmp, gpu=0
[Thu Dec  3 10:00:02 2026]
Finished jobid: 1 (Rule: prep)

[Thu Dec  3 10:00:02 2026]
localrule train_original:
    input: r/data.npz
    output: r/a.pt
    jobid: 2
    threads: 2
    resources: tmpdir=/tmp, gpu=1

[Thu Dec  3 10:00:02 2026]
localcheckpoint pick:
    input: r/data.npz
    output: r/pick.csv
    jobid: 4
    resources: tmpdir=/tmp, gpu=0
[Thu Dec  3 10:00:03 2026]
Finished jobid: 4 (Rule: pick)
[Thu Dec  3 10:00:12 2026]
Finished jobid: 2 (Rule: train_original)

[Thu Dec  3 10:00:12 2026]
localrule train_original:
    input: r/data.npz
    output: r/b.pt
    jobid: 3
    threads: 2
    resources: tmpdir=/tmp, gpu=1
[Thu Dec  3 10:00:22 2026]
Finished jobid: 3 (Rule: train_original)

[Thu Dec  3 10:00:22 2026]
localrule unlearn_tuned:
    input: r/a.pt
    output: r/u.parquet
    jobid: 9
    resources: tmpdir=/tmp, gpu=1
[Thu Dec  3 10:00:27 2026]
Finished jobid: 9 (Rule: unlearn_tuned)

[Thu Dec  3 10:00:27 2026]
localrule gather:
    input: r/a.pt, r/b.pt, r/u.parquet
    output: r/scores.parquet
    jobid: 5
    benchmark: r/gather.tsv
    resources: tmpdir=/tmp, gpu=0
[Thu Dec  3 10:00:31 2026]
Finished jobid: 5 (Rule: gather)
"""


@pytest.fixture(scope="module")
def replay():
    spec = importlib.util.spec_from_file_location("replay", ROOT / "benchmarks" / "replay.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["replay"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def jobs(replay, tmp_path):
    (tmp_path / "run.log").write_text(LOG)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "gather.tsv").write_text("s\th:m:s\n3.5\t0:00:03\n")  # the benchmark file wins
    return replay.parse(tmp_path / "run.log", tmp_path)[0]


def test_parse_reads_durations_and_dependencies(jobs):
    by = {j.jobid: j for j in jobs}
    assert [j.jobid for j in jobs] == [1, 2, 4, 3, 9, 5]  # the order the run started them
    assert {i: by[i].seconds for i in by} == {1: 2, 2: 10, 4: 1, 3: 10, 9: 5, 5: 3.5}
    assert by[2].deps == {1} and by[3].deps == {1} and by[5].deps == {2, 3, 9}
    # unlearn_tuned reads only a.pt, but the checkpoint's output brought it into the DAG
    assert by[9].deps == {2, 4} and by[4].checkpoint
    assert by[2].gpu == 1 and by[2].threads == 2 and by[1].gpu == 0


def test_schedule_on_one_slot_reproduces_the_run_and_on_two_overlaps(replay, jobs):
    one = replay.schedule(jobs, slots=1, cores=16)
    assert one[2] == (2, 12) and one[3] == (12, 22) and one[9] == (22, 27) and one[5] == (27, 30.5)
    two = replay.schedule(jobs, slots=2, cores=16)
    assert two[2] == (2, 12) and two[3] == (2, 12)  # both trainings at once
    assert two[9] == (12, 17) and two[5] == (17, 20.5)
    # cores bind too: two trainings of 2 threads do not fit on 3 cores
    assert replay.schedule(jobs, slots=2, cores=3)[3] == (12, 22)
    path = replay.critical_path(jobs)
    assert [j.jobid for j in path] == [1, 2, 9, 5] and sum(j.seconds for j in path) == 20.5


def test_grow_copies_the_study_model_jobs_and_scales_the_row_stages(replay, jobs):
    grown = replay.grow(jobs, 2)
    assert sum(j.rule == "train_original" for j in grown) == 4 and sum(j.rule == "unlearn_tuned" for j in grown) == 2
    gather = next(j for j in grown if j.rule == "gather")
    assert gather.seconds == 7.0 and gather.deps == {2, 3, 9, 12, 13, 19}
    assert next(j for j in jobs if j.rule == "gather").seconds == 3.5  # the run's own jobs untouched
    ids = {j.jobid: j for j in grown}
    assert ids[19].rule == "unlearn_tuned" and ids[19].deps == {12, 4}  # the copy of 9: on the copy of 2
    assert ids[12].deps == {1} and ids[13].deps == {1}
    assert replay.schedule(grown, slots=4, cores=16)[5] == (17, 24.0)
