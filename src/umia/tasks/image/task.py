"""The image task: ``ImageTask``, what the shard jobs and the unlearning methods use: the data on
the device, the networks, training by the recipe (``umia.tasks.image.recipe``), the loss and
optimiser methods differentiate, and scoring under views."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from umia import plan, plugins
from umia.tasks import optim
from umia.tasks.base import TaskBase
from umia.tasks.image import networks as models
from umia.tasks.image.data import load_prepared
from umia.tasks.image.recipe import Recipe, augment, fit
from umia.tasks.score import padded, phi_loss, scores_frame, view

log = logging.getLogger(__name__)


class ImageTask(TaskBase):
    """The image task of one job: the pool and test split on the device as normalised float tensors,
    the network to build, and the views models are scored under.

    x_pool: (n_pool, C, H, W) float32; y_pool: (n_pool,) int64; likewise x_test, y_test.
    ``network`` is a registry name or a plug-in ``module:callable`` returning an ``nn.Module`` for
    ``(in_shape, n_classes, width)``.
    """

    name = "image"

    def __init__(
        self,
        data: str,
        candidates: str | None,
        device: str,
        config_hash: str | None,
        threads: int = 0,
        network: str = "mlp",
        width: int = 256,
        views: Sequence[str] = ("identity", "mirror"),
    ):
        super().__init__(device, threads)
        a = load_prepared(data)
        self.n_classes = a.n_classes
        x_pool = torch.from_numpy(a.x_train).to(self.device).permute(0, 3, 1, 2).float() / 255
        x_test = torch.from_numpy(a.x_test).to(self.device).permute(0, 3, 1, 2).float() / 255
        mean = x_pool.mean(dim=(0, 2, 3), keepdim=True)
        std = x_pool.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)  # a constant channel stays finite
        self.x_pool = (x_pool - mean) / std
        self.x_test = (x_test - mean) / std
        self.y_pool = torch.from_numpy(a.y_train).to(self.device)
        self.y_test = torch.from_numpy(a.y_test).to(self.device)
        self.labels = np.concatenate([a.y_train, a.y_test])
        self.n_pool, self.n_test = len(a.y_train), len(a.y_test)
        self._read_candidates(candidates, config_hash)
        self.in_shape = tuple(self.x_pool.shape[1:])
        self.network, self.width, self.views = network, width, tuple(views)
        self._checked = False

    # --------------------------------------------------------------------------------- models
    def new_model(self, init_seed: int, x_init: torch.Tensor | None = None) -> nn.Module:
        """A freshly initialised network (weights from ``init_seed``) on the device."""
        torch.manual_seed(init_seed)
        if self._checked:
            net = models.build(self.network, self.in_shape, self.n_classes, self.width)
        else:  # once a job: a module giving (batch, n_classes) logits (a plug-in above all)
            build = lambda *a: models.build(self.network, *a)  # noqa: E731
            net = plugins.check_network(build, self.network, self.in_shape, self.n_classes, self.width)
            self._checked = True
        if isinstance(net, models.FastCNN) and x_init is not None:
            net.init_whitening(x_init[:5000])
        net = net.to(self.device)
        if self.device.type == "cuda" and self.network != "mlp":
            net = net.to(memory_format=torch.channels_last)
        return net

    def load_model(self, state: dict) -> nn.Module:
        model = self.new_model(0)
        model.load_state_dict(state)
        return model

    def pool(self, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pool images where ``keep`` (n_pool,) is True, as (x, y)."""
        return self.x_pool[keep], self.y_pool[keep]

    def train(self, keep: dict[int, torch.Tensor], recipe: Mapping, seed: int):
        """Train a model per {model_id: mask over the pool} with the recipe. Yields (model_id, model,
        seconds) in model order."""
        rec = Recipe.from_mapping(recipe)
        for model_id, mask in keep.items():
            t0 = time.perf_counter()
            x, y = self.pool(mask)
            net = self.new_model(plan.derive_seed(seed, "init", model_id), x)
            fit(self, net, x, y, rec, self.generator(plan.derive_seed(seed, "order", model_id)))
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            yield model_id, net, time.perf_counter() - t0

    # ------------------------------------------------------------------------- what methods use
    def logits(self, model: nn.Module, batch) -> torch.Tensor:
        with self.autocast:
            return model(batch[0])

    def loss(self, model: nn.Module, batch, settings: Mapping, reduction: str = "mean") -> torch.Tensor:
        """Cross-entropy with the recipe's label smoothing: a scalar, or (B,) with reduction "none"."""
        x, y = batch
        logits = self.logits(model, batch).float()
        return F.cross_entropy(logits, y, label_smoothing=settings.get("label_smoothing", 0.0), reduction=reduction)

    def augment(self, batch, settings: Mapping, gen: torch.Generator):
        x, *rest = batch
        return (augment(x, gen, settings.get("flip", False), settings.get("translate", 0)), *rest)

    def optimiser(self, model: nn.Module, lr: float, steps: int, weight_decay: float | None = None) -> optim.Optimiser:
        """SGD with Nesterov momentum 0.9, weight decay 5e-4 unless given, linear decay to zero;
        on a GPU the fused kernel, as training uses (one launch a step for all parameters)."""
        wd = 5e-4 if weight_decay is None else weight_decay
        return optim.sgd(model, lr, steps, momentum=0.9, weight_decay=wd, fused=self.device.type == "cuda")

    # --------------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def score(self, model: nn.Module, batch: int = 4096) -> dict[str, np.ndarray]:
        """phi, loss and correctness on the pool and the test split under each view: (V, n_pool + n_test).
        With the identity and mirror views, also ``tta_correct`` (n_test,): the test predictions of
        the two views' summed logits (mirror-TTA), from the same passes."""
        model.eval()
        y_all = torch.cat([self.y_pool, self.y_test])
        out = {k: [] for k in ("phi", "loss", "correct")}
        test_logits = {}
        for v in self.views:
            logits = []
            for x in (self.x_pool, self.x_test):
                for i in range(0, len(x), batch):
                    with self.autocast:
                        logits.append(model(view(x[i : i + batch], v)).float())
            z = torch.cat(logits)
            test_logits[v] = z[self.n_pool :]
            for k, t in zip(("phi", "loss", "correct"), phi_loss(z, y_all), strict=True):
                out[k].append(t)
        scored = {k: torch.stack(v).cpu().numpy() for k, v in out.items()}
        if {"identity", "mirror"} <= test_logits.keys():
            tta = (test_logits["identity"] + test_logits["mirror"]).argmax(1) == self.y_test
            scored["tta_correct"] = tta.cpu().numpy()
        return scored

    @torch.no_grad()
    def phi(self, model: nn.Module, data, batch: int = 4096) -> torch.Tensor:
        """phi of a few examples under each view, on the device: (V, n). Leaves the model in the
        mode it was in; batches are padded to a few shapes (``score.padded``)."""
        x, y = data[0], data[1]
        was_training = model.training
        model.eval()
        out = []
        for v in self.views:
            logits = []
            for i in range(0, len(x), batch):
                xb = x[i : i + batch]
                with self.autocast:
                    logits.append(model(view(padded(xb), v))[: len(xb)].float())
            out.append(phi_loss(torch.cat(logits) if logits else x.new_zeros(0, self.n_classes), y)[0])
        model.train(was_training)
        return torch.stack(out)

    def tables(self, scored: Mapping[str, np.ndarray], model_id: int, stage: str, method: str) -> dict:
        return {"scores": scores_frame(scored, self, model_id, stage, method, self.views)}

    def describe(self, model: nn.Module, scored: Mapping[str, np.ndarray], keep: torch.Tensor) -> str:
        """Test accuracy, plain and mirror-TTA: from ``scored`` where it has both views (no more passes)."""
        if "tta_correct" in scored:
            plain = float(scored["correct"][self.views.index("identity"), self.n_pool :].mean())
            tta = float(scored["tta_correct"].mean())
        else:
            plain, tta = test_accuracy(self, model), test_accuracy(self, model, tta=True)
        return f"test accuracy {plain:.4f} (mirror-TTA {tta:.4f})"


def test_accuracy(bench: ImageTask, model: nn.Module, tta: bool = False) -> float:
    """Accuracy on the test split; with ``tta`` the prediction averages the logits of each image
    and its mirror image (the two views the attacks score)."""
    model.eval()
    correct = 0
    with torch.no_grad(), bench.autocast:
        for i in range(0, bench.n_test, 4096):  # score_model's chunks: shapes cuDNN has tuned already
            xb = bench.x_test[i : i + 4096]
            logits = model(xb).float()
            if tta:
                logits = logits + model(xb.flip(-1)).float()
            correct += (logits.argmax(1) == bench.y_test[i : i + 4096]).sum()
    return float(correct) / bench.n_test
