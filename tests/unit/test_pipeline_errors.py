"""A table from another config is refused, not mixed; a full disk leaves no file that looks
complete and keeps what was there; a job's user-facing error is one line (a method that raises
inside an unlearning job included)."""

import errno
import subprocess
import sys

import pandas as pd
import pytest

from umia import io
from umia.errors import TableError, UmiaError
from umia.stages.gather import gather
from umia.stages.shards import MethodFailed, unlearn_shard


def _scores(model_id: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_id": [model_id] * 2,
            "stage": "original",
            "method": "none",
            "example_id": [0, 1],
            "split": "pool",
            "label": [0, 1],
            "view": "identity",
            "phi": [1.0, 2.0],
            "loss": [0.1, 0.2],
            "correct": True,
        }
    )


def test_gather_refuses_a_part_from_another_config_and_writes_nothing(tmp_path):
    io.write_table(_scores(0), tmp_path / "a.parquet", io.SCORES, "hash-this")
    io.write_table(_scores(1), tmp_path / "b.parquet", io.SCORES, "hash-older")
    out = tmp_path / "scores.parquet"
    with pytest.raises(TableError, match="written by another config") as e:
        gather(parts=[str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], out=str(out), config_hash="hash-this")
    assert "\n" not in str(e.value)
    assert not out.exists() and not list(tmp_path.glob(".*tmp*"))


def test_full_disk_keeps_the_previous_file(tmp_path):
    path = tmp_path / "table.parquet"
    io.write_table(_scores(0), path, io.SCORES, "h")
    before = path.read_bytes()
    with pytest.raises(OSError), io.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", tmp)
    assert path.read_bytes() == before and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize(
    "raise_, line",
    [
        ("raise TableError('x.parquet: written by another config')", "umia: x.parquet: written by another config"),
        (
            "raise OSError(errno.ENOSPC, 'No space left on device', 'out.pt')",
            "umia: no space left on the device (out.pt)",
        ),
    ],
)
def test_job_error_is_one_line_on_stderr_and_in_the_log(tmp_path, raise_, line):
    log = tmp_path / "job.log"
    code = "\n".join(
        [
            "import errno",
            "from umia.errors import TableError",
            "from umia.runtime.logs import setup_logging",
            f"setup_logging({str(log)!r})",
            raise_,
        ]
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[0].startswith(line) and len(proc.stderr.strip().splitlines()) == 1
    assert line in log.read_text()


def _unlearn(originals, out, method_name, **change):
    unlearn_shard(
        **{
            **originals["job"],
            "task": "image",
            "data": originals["data"],
            "candidates": originals["candidates"],
            "originals": originals["ckpt"],
            "outputs": out,
            "method": method_name.rpartition(":")[2],
            "method_name": method_name,
            "settings": {"epochs": 1, "lr": 0.01, "batch_size": 64},
            **change,
        }
    )


def test_a_method_that_raises_stops_the_job_with_one_line_and_writes_nothing(digits_originals, tmp_path, caplog):
    plugin = tmp_path / "broken.py"
    plugin.write_text("def broken(ctx, model, forget, retain, s, gen):\n    raise RuntimeError('out of ideas')\n")
    out = {k: str(tmp_path / f"u.{k}") for k in ("scores", "trajectory", "ckpt")}
    with pytest.raises(MethodFailed) as e:
        _unlearn(digits_originals, out, f"{plugin}:broken")
    msg = str(e.value)
    assert isinstance(e.value, UmiaError) and "\n" not in msg
    assert msg.startswith(f"method '{plugin}:broken' raised RuntimeError on model 0: out of ideas;")
    assert "out of ideas" in caplog.text and "Traceback" in caplog.text  # the traceback goes to the log
    assert not list(tmp_path.glob("u.*")) and not list(tmp_path.glob(".*tmp*"))


def test_unlearning_refuses_originals_of_another_config(digits_originals, tmp_path):
    import numpy as np

    cand = tmp_path / "candidates.parquet"  # this config's candidates: the originals are the odd ones out
    ids = pd.DataFrame({"example_id": np.arange(0, 80, 2), "label": np.zeros(40, np.int16)})
    io.write_table(ids, cand, io.CANDIDATES, "other-hash")
    out = {k: str(tmp_path / f"u.{k}") for k in ("scores", "trajectory")}
    with pytest.raises(TableError, match="original.pt: written by another config; use a new experiment name"):
        _unlearn(digits_originals, out, "finetune", candidates=str(cand), config_hash="other-hash")
    assert not list(tmp_path.glob("u.*"))
