"""Where a job runs: the config's ``device`` as a torch device."""

from __future__ import annotations

import torch

from umia.errors import DeviceError


def pick_device(preference: str | torch.device) -> torch.device:
    """``auto`` (a GPU if one is visible), ``cuda`` (an error if none is), ``cpu``, or any torch
    device string or object."""
    if isinstance(preference, torch.device):
        return preference
    if preference == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            "config key 'device' is 'cuda' but no GPU is visible; set device: auto or cpu, or run on a GPU node"
        )
    if preference in ("auto", "cuda"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(preference)


def setup(preference: str, threads: int = 0) -> torch.device:
    """A job's device, with its thread count (its share of the node; also fixes CPU results
    across hosts) and the GPU's fast paths (cuDNN autotuning, TF32) switched on."""
    if threads:
        torch.set_num_threads(threads)
    device = pick_device(preference)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def autocast(device: torch.device):
    """bf16 autocast on CUDA, nothing elsewhere (CPU runs in float32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
