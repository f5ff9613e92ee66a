"""The text task: the corpus, the base model, and ``TextTask``, what the shard jobs and the
unlearning methods use to fine-tune, unlearn and score causal language models.

Every shadow model starts from the same base model (pretrained by ``pretrain`` or loaded from the
hub) and is fine-tuned on its half D_i of the pool (retrains: on D_i minus F_i), with the masks of
``umia.plan`` and the seeds of ``plan.derive_seed``, as for images. Each model is scored on every
pool and test review in the job: into io.SCORES (one view, ``identity``; phi = the mean token
log-likelihood, loss = -phi, correct = token accuracy >= 0.5) and into io.LM_STATS (Min-K%, zlib
ratio, token accuracy, tokens) for the LM population attacks.
"""

from __future__ import annotations

import copy
import logging
import math
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from umia import plan
from umia.tasks import optim
from umia.tasks.base import TaskBase
from umia.tasks.score import scores_frame
from umia.tasks.text import corpus as text
from umia.tasks.text import lm

log = logging.getLogger(__name__)

VIEWS = ("identity",)  # a review has one view
CORRECT_AT = 0.5  # io.SCORES' `correct` for text: at least half the next tokens predicted top-1


# ------------------------------------------------------------------------------- corpus, base
def pretrain(
    *,
    corpus: str,
    out: str,
    lm_settings: Mapping,
    max_tokens: int,
    seed: int,
    device: str,
    threads: int = 0,
) -> None:
    """Train the byte-level BPE tokenizer and pretrain the GPT-2-style base model from scratch on
    the corpus's pretraining reviews (disjoint from the pool and the test reviews), then save both
    with ``save_pretrained`` to ``out``; the held-out loss is measured on the test reviews."""
    if threads:
        torch.set_num_threads(threads)
    c = text.read_corpus(corpus)
    texts = c.pretrain["text"].tolist()
    s = lm_settings
    n_positions = s["n_positions"] or max_tokens
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=Path(out).parent, prefix=".tokenizer-") as tok_dir:
        text.train_tokenizer(texts, s["vocab_size"], Path(tok_dir) / "tokenizer")
        model = lm.pretrain_base(
            texts,
            Path(tok_dir) / "tokenizer",
            out,
            n_layer=s["n_layer"],
            n_embd=s["n_embd"],
            n_head=s["n_head"],
            n_positions=n_positions,
            steps=s["pretrain_steps"],
            batch_size=s["pretrain_batch_size"],
            lr=s["pretrain_lr"],
            seed=plan.derive_seed(seed, "pretrain"),
            device=device,
            heldout=c.test["text"].tolist()[:1000],
        )
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "base model: %d parameters, pretrained on %d reviews in %.1f s", n_params, len(texts), time.perf_counter() - t0
    )


# ------------------------------------------------------------------------------------ the task
def base_model(path: str, device: str) -> tuple:
    """The base model every shadow model starts from, and its tokenizer (lm.load_base)."""
    return lm.load_base(path, device)


class TextTask(TaskBase):
    """The text task of one job: the pool and the test reviews encoded with the base model's
    tokenizer, cut to ``max_tokens``, on the device; shadow models are copies of the base model.

    ids: (n_pool + n_test, T) int64; mask: (n_pool + n_test, T) bool; labels: (n_pool + n_test,).
    Pool reviews come first, so a row's index is its example id. A batch is (ids, mask).
    """

    name = "text"
    views = VIEWS

    def __init__(
        self,
        data: str,
        candidates: str | None,
        device: str,
        config_hash: str | None,
        threads: int = 0,
        base: str = "",
        max_tokens: int = 256,
        min_k: float = 0.2,
        adapter: Mapping | None = None,
    ):
        super().__init__(device, threads)
        self.min_k = min_k  # Min-K%'s share of tokens
        self.base, self.tokenizer = base_model(base, self.device)
        # train.adapter: every model a LoRA adapter over the frozen base (None: full copies)
        self.lora = lm.lora_config(adapter, self.base) if adapter else None
        self.base.requires_grad_(self.lora is None)
        c = text.read_corpus(data)
        reviews = [*c.pool["text"], *c.test["text"]]
        ids, mask = text.encode(reviews, self.tokenizer, max_tokens)
        self.seen = text.decode(ids, mask, self.tokenizer)  # what the model reads: the zlib ratio's text
        self.ids, self.mask = ids.to(self.device), mask.to(self.device)
        self.labels = np.concatenate([c.pool["label"].to_numpy(np.int64), c.test["label"].to_numpy(np.int64)])
        self.n_classes = 2
        self.n_pool, self.n_test = len(c.pool), len(c.test)
        self._read_candidates(candidates, config_hash)
        self.score_batch = 128 if self.device.type == "cuda" else 32
        self.n_params = sum(p.numel() for p in self.base.parameters())
        log.info(
            "%d pool and %d test reviews, %d tokens in all (at most %d each); base model %s, %d parameters, on %s%s",
            self.n_pool,
            self.n_test,
            int(mask.sum()),
            max_tokens,
            base,
            self.n_params,
            self.device,
            "" if self.lora is None else f"; LoRA adapters of rank {self.lora.r} on {sorted(self.lora.target_modules)}",
        )

    # --------------------------------------------------------------------------------- models
    def pool(self, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pool reviews where ``keep`` (n_pool,) is True, as (ids, mask)."""
        return self.ids[: self.n_pool][keep], self.mask[: self.n_pool][keep]

    def load_model(self, state: Mapping | None = None, seed: int = 0) -> torch.nn.Module:
        """A copy of the base model, with ``state`` loaded if given. With an adapter: the base with
        a LoRA adapter, fresh (drawn from ``seed``) or the adapter ``state``."""
        if self.lora is not None:
            return lm.with_adapter(self.base, self.lora, seed, state)
        model = copy.deepcopy(self.base)
        if state is not None:
            model.load_state_dict(state)
        return model

    def state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps: the whole state dict, or with an adapter the adapter's weights."""
        return lm.adapter_state(model) if self.lora is not None else super().state(model)

    def train(self, keep: dict[int, torch.Tensor], recipe: Mapping, seed: int):
        """Fine-tune a copy of the base model per {model_id: mask over the pool}: AdamW (``lr``,
        ``weight_decay``, ``warmup``, then linear decay), ``epochs`` passes of ``batch_size``,
        gradient norm clipped at 1; one log line per pass. Yields (model_id, model, seconds)."""
        for model_id, k in keep.items():
            ids, mask = self.pool(k)
            model = self.load_model(seed=plan.derive_seed(seed, "adapter", model_id))
            gen = self.generator(plan.derive_seed(seed, "order", model_id))
            t0 = time.perf_counter()
            bs = min(recipe["batch_size"], len(ids))
            per_epoch = math.ceil(len(ids) / bs)
            total = max(1, round(recipe["epochs"] * per_epoch))
            opt = optim.adamw(model, recipe["lr"], total, weight_decay=recipe["weight_decay"], warmup=recipe["warmup"])
            idx = optim.batch_indices(len(ids), bs, total, gen)
            model.train()
            loss_sum = torch.zeros((), device=self.device)
            for step in range(total):
                loss = lm.lm_loss(model, ids[idx[step]], mask[idx[step]])
                opt.step(loss)
                loss_sum += loss.detach()
                if (step + 1) % per_epoch == 0 or step + 1 == total:
                    done = (step % per_epoch) + 1
                    log.info("finetune: step %d/%d loss %.4f", step + 1, total, (loss_sum / done).item())
                    loss_sum.zero_()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            yield model_id, model, time.perf_counter() - t0

    # ------------------------------------------------------------------------- what methods use
    def logits(self, model: torch.nn.Module, batch) -> torch.Tensor:
        return lm.forward_logits(model, batch[0], batch[1])  # (B, T, V)

    def loss(self, model: torch.nn.Module, batch, settings: Mapping, reduction: str = "mean") -> torch.Tensor:
        """The causal LM loss over the batch's real tokens (a scalar), or with reduction "none"
        each sequence's summed negative log-likelihood, (B,)."""
        ids, mask = batch
        if reduction == "none":
            return -lm.sequence_loglik(model, ids, mask)
        return lm.lm_loss(model, ids, mask)

    def augment(self, batch, settings: Mapping, gen: torch.Generator):
        return batch  # a review is read as it is

    def optimiser(
        self, model: torch.nn.Module, lr: float, steps: int, weight_decay: float | None = None
    ) -> optim.Optimiser:
        """AdamW, weight decay 0 unless given, linear decay to zero, gradient norm clipped at 1."""
        return optim.adamw(model, lr, steps, weight_decay=weight_decay or 0.0, clip=1.0)

    # --------------------------------------------------------------------------------- scoring
    def score(self, model: torch.nn.Module) -> dict[str, np.ndarray]:
        """sequence_scores of every pool and test review; phi, loss, correct as (1, n) arrays
        (one view), the LM statistics as (n,) arrays."""
        s = lm.sequence_scores(model, self.ids, self.mask, self.score_batch, texts=self.seen, k=self.min_k)
        return {
            **s,
            "phi": s["phi"][None],
            "loss": s["loss"][None],
            "correct": (s["token_accuracy"] >= CORRECT_AT)[None],
        }

    def phi(self, model: torch.nn.Module, data) -> torch.Tensor:
        """The mean token log-likelihood of each review of ``data``: (1, n) on the device."""
        if len(data[0]) == 0:
            return torch.zeros(1, 0, device=self.device)
        was_training = model.training
        phi = lm.sequence_scores(model, data[0], data[1], self.score_batch)["phi"]
        model.train(was_training)
        return torch.from_numpy(phi)[None].to(self.device)

    def tables(self, scored: Mapping[str, np.ndarray], model_id: int, stage: str, method: str) -> dict:
        """A scored model's rows of io.SCORES and of io.LM_STATS."""
        n = self.n_pool + self.n_test
        stats = pd.DataFrame(
            {
                "model_id": np.full(n, model_id, np.int32),
                "stage": stage,
                "method": method,
                "example_id": np.arange(n, dtype=np.int64),
                "split": np.array(["pool"] * self.n_pool + ["test"] * self.n_test),
                "label": self.labels.astype(np.int16),
                "min_k": scored["min_k"],
                "zlib_ratio": scored["zlib_ratio"],
                "token_accuracy": scored["token_accuracy"],
                "n_tokens": scored["n_tokens"].astype(np.int32),
            }
        )
        return {"scores": scores_frame(scored, self, model_id, stage, method, VIEWS), "lm_stats": stats}

    def describe(self, model: torch.nn.Module, scored: Mapping[str, np.ndarray], keep: torch.Tensor) -> str:
        members = np.flatnonzero(keep.cpu().numpy())
        tokens = int(self.mask[: self.n_pool][keep].sum())
        held_out = self.perplexity(scored, slice(self.n_pool, None))
        member = self.perplexity(scored, members)
        return f"{tokens} tokens, held-out perplexity {held_out:.2f}, member perplexity {member:.2f}"

    def perplexity(self, s: Mapping[str, np.ndarray], rows: slice | np.ndarray) -> float:
        """Token-weighted perplexity over ``rows`` of the scores ``s``."""
        loss, n = s["loss"][0][rows].astype(np.float64), s["n_tokens"][rows]
        ok = n > 0
        return math.exp(float((loss[ok] * n[ok]).sum() / max(1, n[ok].sum())))
