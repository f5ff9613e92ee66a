"""What both tasks share: the pool size, the candidates and the membership masks, the device,
what a checkpoint keeps, and generators on the device."""

from __future__ import annotations

import numpy as np
import torch

from umia import io, plan
from umia.runtime.device import autocast, setup


class TaskBase:
    """The part of a task that is the same for both: device, pool size, candidates, the masks."""

    device: torch.device
    n_pool: int
    n_test: int
    labels: np.ndarray  # (n_pool + n_test,) int64
    candidate_ids: np.ndarray

    def __init__(self, device: str, threads: int = 0):
        self.device = setup(device, threads)
        self.autocast = autocast(self.device)

    def _read_candidates(self, candidates: str | None, config_hash: str | None) -> None:
        self.candidate_ids = np.zeros(0, np.int64)
        if candidates is not None:
            self.candidate_ids = io.read_table(candidates, io.CANDIDATES, config_hash).column("example_id").to_numpy()

    def masks(self, seed: int, model_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(D_i, F_i) as boolean masks over the pool, on the device."""
        train = plan.train_mask(seed, model_id, self.n_pool)
        forget = plan.forget_mask(train, self.candidate_ids)
        return torch.from_numpy(train).to(self.device), torch.from_numpy(forget).to(self.device)

    def state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps of ``model``: its state dict, on the CPU."""
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def generator(self, seed: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(seed)
