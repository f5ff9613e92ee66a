"""Where results came from: the code version, the packages, and the machines the model jobs ran on.

Model jobs stamp ``job()`` into the metadata of the score files they write; the gather step
collects the distinct stamps; the report's summary page shows them with ``describe()``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import umia

PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "matplotlib",
    "snakemake",
    "snakemake-executor-plugin-slurm",
)


def job(device, plugins: dict[str, str] | None = None) -> str:
    """JSON for one model job: its device (the GPU's name), torch and CUDA versions, host, and the
    plug-ins it ran (name -> sha256 of their source), if any."""
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return json.dumps(
        {
            "device": name,
            "torch": torch.__version__,
            "cuda": torch.version.cuda if device.type == "cuda" else None,
            "host": platform.node(),
            # the GPU it ran on, as the scheduler or its slot (umia.runtime.gpus; the job's log names the slot) set it
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES") if device.type == "cuda" else None,
            "umia": umia.__version__,
            "source": source_hash(),
            **({"plugins": plugins} if plugins else {}),
        },
        sort_keys=True,
    )


def source_hash(root: str | Path | None = None) -> str:
    """A short sha256 over the source files under ``root`` (default: the umia package): it names
    the code that ran even in a checkout with local edits."""
    root = Path(root or Path(__file__).parent)
    digest = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".smk", ".yaml", ".rst") and p.is_file()):
        digest.update(f.relative_to(root).as_posix().encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def code_version(path: str | Path | None = None) -> str:
    """umia's version, with the git commit of the workflow (and '-dirty' for local edits) when
    the workflow is a git checkout, and the hash of the source that ran (``source_hash``)."""
    here = Path(path or Path(__file__).parent)
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    version = f"umia {umia.__version__}" + (f" (git {commit})" if commit else "") + f", package sha256 {source_hash()}"
    return version + (f", workflow sha256 {source_hash(Path(path).parent)}" if path else "")


def packages() -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for p in PACKAGES:
        try:
            found[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    return found


def merge(stamps: list[str]) -> str:
    """The distinct job stamps (JSON strings) with how many files carried each, as JSON."""
    counts: dict[str, int] = {}
    for s in stamps:
        counts[s] = counts.get(s, 0) + 1
    return json.dumps([{**json.loads(s), "files": n} for s, n in sorted(counts.items())])
