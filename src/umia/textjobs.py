"""The text task's jobs: the corpus, the base model, and the shard jobs that fine-tune, unlearn and
score K causal language models in one process, writing the same tables as the image task.

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

from umia import io, lm, plan, provenance, text
from umia.data import _check_sha256
from umia.score import scores_frame
from umia.train import cpu_state, load_models, save_models
from umia.unlearn import finish_trajectory, probe_points, trajectory_frame

log = logging.getLogger(__name__)

VIEWS = ("identity",)  # a review has one view
CORRECT_AT = 0.5  # io.SCORES' `correct` for text: at least half the next tokens predicted top-1


# ------------------------------------------------------------------------------- corpus, base
def prepare_corpus(dataset: Mapping, seed: int, out: str) -> text.Corpus:
    """The prepare job of a text experiment: the corpus (pool, test, pretraining reviews) from
    ``dataset.path``, checked against ``dataset.sha256`` when given."""
    path = Path(dataset["path"])
    if dataset.get("sha256"):
        _check_sha256(path, dataset["sha256"])
    return text.prepare_text(
        str(path),
        out,
        pool_size=dataset["pool_size"],
        test_size=dataset["test_size"],
        pretrain_size=dataset["pretrain_size"],
        seed=seed,
    )


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


# ------------------------------------------------------------------------------------ the bench
class TextBench:
    """A job's reviews on its device: the pool and the test reviews encoded with the base model's
    tokenizer, cut to ``max_tokens``.

    ids: (n_pool + n_test, T) int64; mask: (n_pool + n_test, T) bool; labels: (n_pool + n_test,).
    Pool reviews come first, so a row's index is its example id.
    """

    def __init__(
        self,
        corpus: str,
        candidates: str | None,
        base: str,
        device: str,
        config_hash: str | None,
        max_tokens: int,
        threads: int = 0,
        min_k: float = 0.2,
    ):
        self.min_k = min_k  # Min-K%'s share of tokens
        if threads:
            torch.set_num_threads(threads)  # the job's share of the node; also fixes CPU results across hosts
        self.device = lm.resolve_device(device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
        self.base, self.tokenizer = lm.load_base(base, self.device)
        c = text.read_corpus(corpus)
        reviews = [*c.pool["text"], *c.test["text"]]
        ids, mask = text.encode(reviews, self.tokenizer, max_tokens)
        self.seen = text.decode(ids, mask, self.tokenizer)  # what the model reads: the zlib ratio's text
        self.ids, self.mask = ids.to(self.device), mask.to(self.device)
        self.labels = np.concatenate([c.pool["label"].to_numpy(np.int64), c.test["label"].to_numpy(np.int64)])
        self.n_pool, self.n_test = len(c.pool), len(c.test)
        self.candidate_ids = np.zeros(0, np.int64)
        if candidates is not None:
            self.candidate_ids = io.read_table(candidates, io.CANDIDATES, config_hash).column("example_id").to_numpy()
        self.score_batch = 128 if self.device.type == "cuda" else 32
        self.n_params = sum(p.numel() for p in self.base.parameters())
        log.info(
            "%d pool and %d test reviews, %d tokens in all (at most %d each); base model %s, %d parameters, on %s",
            self.n_pool,
            self.n_test,
            int(mask.sum()),
            max_tokens,
            base,
            self.n_params,
            self.device,
        )

    def masks(self, seed: int, model_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(D_i, F_i) as boolean masks over the pool, on the device."""
        train = plan.train_mask(seed, model_id, self.n_pool)
        forget = plan.forget_mask(train, self.candidate_ids)
        return torch.from_numpy(train).to(self.device), torch.from_numpy(forget).to(self.device)

    def pool(self, keep: torch.Tensor) -> lm.Batch:
        """The pool reviews where ``keep`` (n_pool,) is True, as (ids, mask)."""
        return self.ids[: self.n_pool][keep], self.mask[: self.n_pool][keep]

    def new_model(self, state: Mapping | None = None) -> torch.nn.Module:
        """A copy of the base model, with ``state`` loaded if given."""
        model = copy.deepcopy(self.base)
        if state is not None:
            model.load_state_dict(state)
        return model

    def score(self, model: torch.nn.Module) -> dict[str, np.ndarray]:
        """sequence_scores of every pool and test review: (n_pool + n_test,) arrays."""
        return lm.sequence_scores(model, self.ids, self.mask, self.score_batch, texts=self.seen, k=self.min_k)

    def perplexity(self, s: Mapping[str, np.ndarray], rows: slice | np.ndarray) -> float:
        """Token-weighted perplexity over ``rows`` of the scores ``s``."""
        loss, n = s["loss"][rows].astype(np.float64), s["n_tokens"][rows]
        ok = n > 0
        return math.exp(float((loss[ok] * n[ok]).sum() / max(1, n[ok].sum())))


def _frames(
    bench: TextBench, s: Mapping[str, np.ndarray], model_id: int, stage: str, method: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A scored model's rows of io.SCORES and of io.LM_STATS."""
    scores = {
        "phi": s["phi"][None],
        "loss": s["loss"][None],
        "correct": (s["token_accuracy"] >= CORRECT_AT)[None],
    }
    n = bench.n_pool + bench.n_test
    stats = pd.DataFrame(
        {
            "model_id": np.full(n, model_id, np.int32),
            "stage": stage,
            "method": method,
            "example_id": np.arange(n, dtype=np.int64),
            "split": np.array(["pool"] * bench.n_pool + ["test"] * bench.n_test),
            "label": bench.labels.astype(np.int16),
            "min_k": s["min_k"],
            "zlib_ratio": s["zlib_ratio"],
            "token_accuracy": s["token_accuracy"],
            "n_tokens": s["n_tokens"].astype(np.int32),
        }
    )
    return scores_frame(scores, bench, model_id, stage, method, VIEWS), stats


def _log_model(what: str, bench: TextBench, s: Mapping[str, np.ndarray], train: torch.Tensor, seconds: float) -> None:
    members = np.flatnonzero(train.cpu().numpy())
    log.info(
        "%s in %.2f s; held-out perplexity %.2f, member perplexity %.2f",
        what,
        seconds,
        bench.perplexity(s, slice(bench.n_pool, None)),
        bench.perplexity(s, members),
    )


def _write(
    out_scores: str,
    out_lm_stats: str,
    frames: list,
    stats: list,
    bench: TextBench,
    config_hash: str,
) -> None:
    stamp = provenance.job(bench.device)
    io.write_table(pd.concat(frames, ignore_index=True), out_scores, io.SCORES, config_hash, stamp)
    io.write_table(pd.concat(stats, ignore_index=True), out_lm_stats, io.LM_STATS, config_hash)


# ------------------------------------------------------------------------------------ shard jobs
def train_text_shard(
    *,
    data: str,
    candidates: str,
    base: str,
    out_scores: str,
    out_lm_stats: str,
    out_ckpt: str | None,
    stage: str,
    shard: int,
    shard_size: int,
    seed: int,
    recipe: Mapping,
    max_tokens: int,
    min_k: float,
    device: str,
    config_hash: str,
    threads: int = 0,
    **_: object,
) -> None:
    """Fine-tune and score the originals (stage "original", on D_i) or retrains (stage "retrain",
    on D_i minus F_i) of one shard: the base model fine-tuned with the training recipe (AdamW:
    ``epochs``, ``batch_size``, ``lr``, ``weight_decay``, ``warmup``). Writes their scores, LM
    statistics and, if asked, checkpoints (state dicts)."""
    if stage not in ("original", "retrain"):
        raise ValueError(f"stage must be original or retrain, not {stage!r}")
    bench = TextBench(data, candidates, base, device, config_hash, max_tokens, threads, min_k)
    method = "none" if stage == "original" else "retrain"
    frames, stats, states = [], [], {}
    for model_id in plan.shard_models(shard, shard_size):
        train, forget = bench.masks(seed, model_id)
        keep = train & ~forget if stage == "retrain" else train
        ids, mask = bench.pool(keep)
        model = bench.new_model()
        t0 = time.perf_counter()
        lm.finetune_lm(
            model,
            ids,
            mask,
            epochs=recipe["epochs"],
            batch_size=recipe["batch_size"],
            lr=recipe["lr"],
            weight_decay=recipe["weight_decay"],
            warmup=recipe["warmup"],
            seed=plan.derive_seed(seed, "order", model_id),
        )
        if bench.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        s = bench.score(model)
        what = f"{stage} model {model_id}: fine-tuned on {len(ids)} reviews ({int(mask.sum())} tokens)"
        _log_model(what, bench, s, keep, seconds)
        f, st = _frames(bench, s, model_id, stage, method)
        frames.append(f)
        stats.append(st)
        if out_ckpt:
            states[model_id] = cpu_state(model)
    _write(out_scores, out_lm_stats, frames, stats, bench, config_hash)
    if out_ckpt:
        meta = {"stage": stage, "network": "gpt2", "base": str(base), "seed": seed, "config_hash": config_hash}
        save_models(out_ckpt, states, meta)


def unlearn_text_shard(
    *,
    data: str,
    candidates: str,
    base: str,
    originals: str,
    out_scores: str,
    out_lm_stats: str,
    out_ckpt: str | None,
    out_trajectory: str,
    method: str,
    method_name: str,
    settings: Mapping,
    shard: int,
    shard_size: int,
    seed: int,
    max_tokens: int,
    min_k: float,
    device: str,
    config_hash: str,
    rate_points: int = 4,
    threads: int = 0,
    **_: object,
) -> None:
    """Apply one LM unlearning method (umia.lm.LM_METHODS) to each original of a shard
    (U_i = m(O_i, F_i, D_i minus F_i)), score the unlearned models, and write their scores, LM
    statistics, trajectory (the forget reviews' phi before, at every 1/rate_points of the run and
    at its end) and, if asked, checkpoints."""
    if method_name not in lm.LM_METHODS:
        raise ValueError(f"unknown LM unlearning method {method_name!r}; known: {', '.join(lm.LM_METHODS)}")
    bench = TextBench(data, candidates, base, device, config_hash, max_tokens, threads, min_k)
    states, meta = load_models(originals, bench.device)
    if meta["config_hash"] != config_hash:
        raise io.TableError(f"{originals}: written by another config; use a new experiment name")
    frames, stats, trajectory, out_states = [], [], [], {}
    for model_id in plan.shard_models(shard, shard_size):
        train, forget = bench.masks(seed, model_id)
        model = bench.new_model(states[model_id])
        f_batch, r_batch = bench.pool(forget), bench.pool(train & ~forget)
        forget_ids = torch.nonzero(forget).squeeze(1).cpu().numpy()

        def record(point: int, step: int, total: int, model=model, f=f_batch, i=model_id, ids=forget_ids) -> None:
            phi = lm.sequence_scores(model, *f, bench.score_batch)["phi"] if len(ids) else np.zeros(0, np.float32)
            trajectory.append((i, ids, point, step, total, phi[None]))

        record(0, 0, 0)
        gen = torch.Generator(device=bench.device).manual_seed(plan.derive_seed(seed, "unlearn", method, model_id))
        t0 = time.perf_counter()
        with probe_points(rate_points, record) as probe:
            lm.LM_METHODS[method_name](model, f_batch, r_batch, settings, gen)
        if bench.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        s = bench.score(model)
        what = f"{method} model {model_id}: forgot {len(forget_ids)} reviews ({probe.steps} steps)"
        _log_model(what, bench, s, train & ~forget, seconds)
        finish_trajectory(trajectory, model_id, forget_ids, rate_points, probe, s["phi"][None, forget_ids])
        f, st = _frames(bench, s, model_id, "unlearned", method)
        frames.append(f)
        stats.append(st)
        if out_ckpt:
            out_states[model_id] = cpu_state(model)
    _write(out_scores, out_lm_stats, frames, stats, bench, config_hash)
    io.write_table(trajectory_frame(trajectory, method, VIEWS, rate_points), out_trajectory, io.TRAJECTORY, config_hash)
    if out_ckpt:
        meta = {"stage": "unlearned", "method": method, "network": "gpt2", "base": str(base), "seed": seed}
        save_models(out_ckpt, out_states, {**meta, "config_hash": config_hash})
