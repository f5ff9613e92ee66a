"""GPU slots of local runs (umia.runtime.gpus): which GPUs are visible, and how jobs take slots."""

import subprocess
import sys
import threading
import time

import pytest

from umia.runtime import gpus


@pytest.fixture(autouse=True)
def _release():
    yield
    gpus.release()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0,1", ["0", "1"]),
        ("3, 5", ["3", "5"]),
        ("GPU-8f2c,GPU-77aa", ["GPU-8f2c", "GPU-77aa"]),
        ("", []),
        ("-1", []),
        ("2,-1,3", ["2"]),  # CUDA stops at the first invalid entry
    ],
)
def test_visible_follows_cuda_visible_devices(value, expected):
    assert gpus.visible({"CUDA_VISIBLE_DEVICES": value}) == expected


def test_visible_without_a_driver_or_variable_is_none(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gpus.visible({}) == []


def _spec(tmp_path, names="0,1", per=2, allocation=""):
    return {gpus.ENV: f"{names};{per};{allocation};{tmp_path}"}


def test_claims_spread_over_the_gpus_before_sharing_one(tmp_path):
    envs = [_spec(tmp_path) for _ in range(4)]
    slots = [gpus.claim(environ=e) for e in envs]
    assert [(s.gpu, s.index) for s in slots] == [("0", 0), ("1", 0), ("0", 1), ("1", 1)]
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "0", "1"]
    assert str(slots[3]) == "GPU 1 (CUDA_VISIBLE_DEVICES=1), slot 2 of 2"


def test_a_freed_slot_is_taken_again(tmp_path):
    first = gpus.claim(environ=_spec(tmp_path, names="7", per=1))
    assert (first.gpu, first.index) == ("7", 0)
    gpus.release()
    again = gpus.claim(environ=_spec(tmp_path, names="7", per=1))
    assert (again.gpu, again.index) == ("7", 0)


def test_no_slots_handed_out_claims_nothing(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "4"}
    assert gpus.claim(environ=env) is None
    assert env["CUDA_VISIBLE_DEVICES"] == "4"  # a scheduler's choice is left alone


def test_a_job_of_another_slurm_allocation_is_left_to_its_scheduler(tmp_path):
    env = {**_spec(tmp_path, allocation=""), "SLURM_JOB_ID": "123", "CUDA_VISIBLE_DEVICES": "0"}
    assert gpus.claim(environ=env) is None
    inside = {**_spec(tmp_path, names="2,3", allocation="99"), "SLURM_JOB_ID": "99"}
    assert gpus.claim(environ=inside).gpu == "2"  # a local run inside an allocation places its jobs


def test_export_sets_the_spec_and_counts_the_slots(tmp_path, monkeypatch):
    monkeypatch.setenv(gpus.ENV, "")  # set, so that the test's own change is undone after it
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert gpus.export(["0", "1", "2"], 3, tmp_path) == 9
    import os

    assert os.environ[gpus.ENV] == f"0,1,2;3;;{tmp_path}"


def test_a_job_waits_while_another_process_holds_every_slot(tmp_path):
    """The lock is the process's: a slot held by another process is free once it ends."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from umia.runtime import gpus; "
            f"gpus.claim(environ={_spec(tmp_path, names='0', per=1)!r}); print('held', flush=True); time.sleep(1.5)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    got = {}
    t0 = time.perf_counter()
    waiter = threading.Thread(target=lambda: got.update(slot=gpus.claim(poll=0.05, environ=_spec(tmp_path, "0", 1))))
    waiter.start()
    waiter.join(timeout=20)
    holder.wait()
    assert got["slot"].gpu == "0"
    assert time.perf_counter() - t0 > 0.5  # it waited for the holder to end
