"""Causal language models for the text task: a small GPT-2-style base model pretrained from
scratch (or any hub model), sequence statistics for the attacks, fine-tuning of shadow models and
the unlearning methods for language models.

Data are ``(ids, mask)`` pairs from ``umia.text.encode``: ids (n, T) int64, mask (n, T) bool with
each row's real tokens a prefix (right padding). A model is scored on its real next-token
predictions: position t predicts token t+1 wherever token t+1 is real, so a row of L real tokens
(bos included) has L - 1 predictions. An unlearning method is one function
``(model, forget, retain, settings, gen) -> None`` that changes ``model`` in place, registered in
``LM_METHODS``. Every optimiser carries ``umia_total_steps``, the number of steps it will take.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from umia.text import atomic_dir, encode, zlib_lengths

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]  # (ids (n, T) int64, mask (n, T) bool)
LMMethod = Callable[[nn.Module, Batch, Batch, Mapping, torch.Generator], None]


# ------------------------------------------------------------------------------- models and devices
def _quiet_transformers() -> None:
    """No progress bars when loading or saving weights: jobs log one line per event instead."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch device from the config's ``device``: "auto" (a GPU if one is visible), "cuda"
    (an error if none is), "cpu", or any torch device string or object."""
    if isinstance(device, str) and device in ("auto", "cuda"):
        from umia.train import pick_device

        return pick_device(device)
    return torch.device(device)


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def autocast(device: torch.device) -> AbstractContextManager:
    """bf16 autocast on CUDA, nothing elsewhere (CPU runs in float32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout layer's rate. The default 0 makes train mode deterministic: dropout
    would draw from torch's global generator, not from the run's seeded generator."""
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


def new_model(
    tokenizer: PreTrainedTokenizerBase,
    *,
    n_layer: int,
    n_embd: int,
    n_head: int,
    n_positions: int,
    seed: int,
    dropout: float = 0.0,
) -> PreTrainedModel:
    """A freshly initialised GPT-2-style ``GPT2LMHeadModel`` (tied embeddings) on the CPU, its
    vocabulary that of ``tokenizer``; the same seed gives the same weights (global RNG untouched)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=bos,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        use_cache=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(config)


def load_base(
    name_or_path: str | Path, device: str | torch.device, *, dropout: float | None = 0.0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer with ``AutoModelForCausalLM`` / ``AutoTokenizer``
    ``.from_pretrained``: a hub name, a local cache or a folder written by ``pretrain_base`` alike.

    Weights are loaded in float32 (bf16 comes from autocast on CUDA); dropout is set to
    ``dropout`` (None: keep the model's own). Returns (model on ``device`` in eval mode, tokenizer).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=torch.float32)
    if dropout is not None:
        set_dropout(model, dropout)
    return model.to(resolve_device(device)).eval(), tokenizer


# --------------------------------------------------------------------------------- likelihoods
def _logits(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with autocast(ids.device):
        return model(input_ids=ids, attention_mask=mask.long(), use_cache=False).logits  # (B, T, V)


def token_logprobs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each next token. ids, mask: (B, T) on the model's device.

    Returns lp: (B, T-1) float32 (log_softmax in float32; lp[:, t] = log p(ids[:, t+1] | ids[:, :t+1]))
    and valid: (B, T-1) bool, True where ids[:, t+1] is a real token. Differentiable.
    """
    logits = _logits(model, ids, mask)[:, :-1].float()  # (B, T-1, V)
    lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    return lp, mask[:, 1:]


def sequence_loglik(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of the log-probabilities of each sequence's real next tokens, log pi(y|x): (B,)."""
    lp, valid = token_logprobs(model, ids, mask)
    return torch.where(valid, lp, 0.0).sum(1)


def lm_loss(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The causal LM loss: mean negative log-likelihood over all real next-token predictions of
    the batch (token-weighted, as Hugging Face's), a scalar."""
    lp, valid = token_logprobs(model, ids, mask)
    return -torch.where(valid, lp, 0.0).sum() / valid.sum().clamp(min=1)


@torch.no_grad()
def sequence_scores(
    model: nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    batch_size: int = 32,
    *,
    texts: Sequence[str | bytes] | None = None,
    k: float = 0.2,
) -> dict[str, np.ndarray]:
    """Per-sequence statistics of a model on (ids, mask): (n, T), any device.

    Returns (n,) arrays (higher means "more likely a member" for phi and min_k, lower for loss
    and zlib_ratio):

    - ``phi``: mean log-likelihood of the sequence's real next tokens (the attack statistic);
    - ``loss``: -phi;
    - ``min_k``: Min-K% probability (Shi et al., ICLR 2024): mean of the lowest k-share of the
      token log-probs, floor(k * n_tokens) of them but at least one;
    - ``zlib_ratio`` (only if ``texts`` is given: the texts the rows stand for, e.g.
      ``text.decode(ids, mask, tokenizer)`` for cut reviews): loss / zlib-compressed length in
      bytes of the text (Carlini et al., USENIX Security 2021);
    - ``token_accuracy``: share of next tokens that are the model's top-1 prediction;
    - ``n_tokens``: number of real next-token predictions (int64).

    Sequences with no prediction (bos only) get NaN. Evaluated in eval mode, bf16 autocast on CUDA,
    log_softmax in float32; one host sync per call.
    """
    if ids.shape[1] < 2:
        raise ValueError(f"ids of width {ids.shape[1]}: a sequence needs two tokens to score one prediction")
    if not 0 < k <= 1:
        raise ValueError(f"k = {k}: Min-K% takes a share in (0, 1]")
    dev = device_of(model)
    was_training = model.training
    model.eval()
    lengths = mask.sum(1).cpu()  # (n,) on the host: each batch is cut to its longest row
    parts: dict[str, list[torch.Tensor]] = {k_: [] for k_ in ("sum", "n", "min_k", "hits")}
    for i in range(0, len(ids), batch_size):
        w = max(2, int(lengths[i : i + batch_size].max()))
        x, m = ids[i : i + batch_size, :w].to(dev), mask[i : i + batch_size, :w].to(dev)
        logits = _logits(model, x, m)[:, :-1].float()  # (B, w-1, V)
        lp = torch.log_softmax(logits, -1).gather(-1, x[:, 1:, None]).squeeze(-1)  # (B, w-1)
        valid = m[:, 1:]
        n = valid.sum(1)  # (B,)
        parts["sum"].append(torch.where(valid, lp, 0.0).sum(1))
        parts["n"].append(n)
        parts["hits"].append(((logits.argmax(-1) == x[:, 1:]) & valid).sum(1))
        kk = (n.double() * k).floor().long().clamp(min=1)  # (B,) tokens in the lowest k share
        low = torch.where(valid, lp, torch.inf).sort(1).values.cumsum(1)  # (B, w-1) ascending partial sums
        parts["min_k"].append(low.gather(1, (kk - 1).clamp(max=w - 2)[:, None]).squeeze(1) / kk)
    model.train(was_training)
    cat = {k_: torch.cat(v).cpu().numpy() for k_, v in parts.items()}
    n = cat["n"]
    with np.errstate(invalid="ignore", divide="ignore"):  # n = 0: NaN
        phi = (cat["sum"] / n).astype(np.float32)
        out = {
            "phi": phi,
            "loss": -phi,
            "min_k": np.where(n == 0, np.nan, cat["min_k"]).astype(np.float32),
            "token_accuracy": (cat["hits"] / n).astype(np.float32),
            "n_tokens": n.astype(np.int64),
        }
    if texts is not None:
        if len(texts) != len(n):
            raise ValueError(f"{len(texts)} texts for {len(n)} sequences")
        out["zlib_ratio"] = (out["loss"] / zlib_lengths(texts)).astype(np.float32)
    return out


# ------------------------------------------------------------------------------------ optimising
def schedule(total: int, warmup: float, decay: str = "linear") -> Callable[[int], float]:
    """Learning-rate factor: a linear rise over ``warmup`` of the steps, then a linear or cosine
    decay to zero at step ``total``."""
    rise = max(1, round(warmup * total)) if warmup > 0 else 0

    def factor(step: int) -> float:
        if step < rise:
            return (step + 1) / rise
        frac = min(1.0, (step - rise) / max(1, total - rise))
        return 0.5 * (1 + math.cos(math.pi * frac)) if decay == "cosine" else 1.0 - frac

    return factor


def adamw(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    total_steps: int,
    warmup: float = 0.0,
    decay: str = "linear",
    betas: tuple[float, float] = (0.9, 0.999),
):
    """AdamW with weight decay on matrices only (not biases, norms), a warm-up/decay schedule,
    and ``umia_total_steps`` set: the workflow's optimizer post-step hook reads it to score a
    model at fractions of a run. Returns (optimizer, scheduler)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=lr, betas=betas)
    opt.umia_total_steps = total_steps
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule(total_steps, warmup, decay))


def batch_indices(n: int, batch_size: int, steps: int, gen: torch.Generator) -> torch.Tensor:
    """Indices of ``steps`` batches of ``batch_size`` examples out of n: seeded passes without
    replacement, joined end to end (so every batch has one shape). (steps, batch_size) int64 on
    the generator's device."""
    passes = math.ceil(steps * batch_size / n)
    perm = torch.cat([torch.randperm(n, generator=gen, device=gen.device) for _ in range(passes)])
    return perm[: steps * batch_size].view(steps, batch_size)


def _steps(s: Mapping, n: int) -> tuple[int, int]:
    """Batch size and number of steps of ``s["epochs"]`` passes over n examples."""
    bs = min(s["batch_size"], n)
    return bs, max(1, round(s["epochs"] * math.ceil(n / bs)))


def _optimiser(model: nn.Module, s: Mapping, total: int):
    return adamw(model, s["lr"], s.get("weight_decay", 0.0), total, s.get("warmup", 0.0))


def _step(opt, sched, loss: torch.Tensor, model: nn.Module, clip: float) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)  # no host sync
    opt.step()
    sched.step()


def _to(model: nn.Module, *batches: Batch) -> list[Batch]:
    dev = device_of(model)
    return [(ids.to(dev), mask.to(dev)) for ids, mask in batches]


def _descend(model: nn.Module, data: Batch, s: Mapping, gen: torch.Generator, what: str) -> None:
    """Minimise the causal LM loss on ``data`` for ``s["epochs"]`` passes (AdamW); one log line
    (one host sync) per pass."""
    ((ids, mask),) = _to(model, data)
    bs, total = _steps(s, len(ids))
    per_epoch = math.ceil(len(ids) / bs)
    opt, sched = _optimiser(model, s, total)
    idx = batch_indices(len(ids), bs, total, gen).to(ids.device)
    model.train()
    loss_sum = torch.zeros((), device=ids.device)
    for step in range(total):
        loss = lm_loss(model, ids[idx[step]], mask[idx[step]])
        _step(opt, sched, loss, model, s.get("clip", 1.0))
        loss_sum += loss.detach()
        if (step + 1) % per_epoch == 0 or step + 1 == total:
            done = (step % per_epoch) + 1
            log.info("%s: step %d/%d loss %.4f", what, step + 1, total, (loss_sum / done).item())
            loss_sum.zero_()


def finetune_lm(
    model: nn.Module,
    ids: torch.Tensor,
    mask: torch.Tensor,
    *,
    epochs: float,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
    warmup: float = 0.0,
    clip: float = 1.0,
) -> None:
    """Fine-tune ``model`` in place on (ids, mask): (n, T), with the causal LM loss on real tokens:
    AdamW, warm-up then linear decay, gradient norm clipped at ``clip`` (0: off); batches drawn
    by a generator seeded with ``seed`` on the model's device. A shadow model's training."""
    gen = torch.Generator(device=device_of(model)).manual_seed(seed)
    s = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "warmup": warmup}
    _descend(model, (ids, mask), dict(s, clip=clip), gen, "finetune")


def pretrain_base(
    texts: Sequence[str],
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    *,
    n_layer: int,
    n_embd: int,
    n_head: int,
    n_positions: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str | torch.device = "auto",
    weight_decay: float = 0.1,
    warmup: float = 0.05,
    clip: float = 1.0,
    heldout: Sequence[str] | None = None,
) -> PreTrainedModel:
    """Pretrain a GPT-2-style model from scratch on ``texts`` (each cut to ``n_positions`` tokens)
    for ``steps`` AdamW steps (warm-up, then cosine decay), with the tokenizer saved in
    ``tokenizer_dir``. Writes model (safetensors) and tokenizer with ``save_pretrained`` to
    ``out_dir`` (atomically), with ``umia.json`` recording the settings and the held-out loss on
    ``heldout`` if given; ``load_base(out_dir, ...)`` loads it back. Returns the model (eval mode).
    """
    from transformers import AutoTokenizer

    if steps < 1 or not len(texts):
        raise ValueError(f"pretraining needs texts and at least one step; got {len(texts)} texts, {steps} steps")
    _quiet_transformers()
    device = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    sizes = {"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, "n_positions": n_positions}
    model = new_model(tokenizer, **sizes, seed=seed).to(device)
    ids, mask = (t.to(device) for t in encode(texts, tokenizer, n_positions))
    bs = min(batch_size, len(ids))
    opt, sched = adamw(model, lr, weight_decay, steps, warmup, "cosine", betas=(0.9, 0.95))
    gen = torch.Generator(device=device).manual_seed(seed)
    idx = batch_indices(len(ids), bs, steps, gen)
    every = max(1, steps // 10)
    model.train()
    loss_sum = torch.zeros((), device=device)
    for step in range(steps):
        loss = lm_loss(model, ids[idx[step]], mask[idx[step]])
        _step(opt, sched, loss, model, clip)
        loss_sum += loss.detach()
        if (step + 1) % every == 0 or step + 1 == steps:
            log.info("pretrain: step %d/%d loss %.4f", step + 1, steps, (loss_sum / ((step % every) + 1)).item())
            loss_sum.zero_()
    model.eval()
    meta = {"texts": len(texts), "tokens": int(mask.sum()), **sizes, "steps": steps, "batch_size": bs, "lr": lr}
    meta |= {"seed": seed, "weight_decay": weight_decay, "warmup": warmup, "vocab_size": len(tokenizer)}
    if heldout is not None and len(heldout):
        h_ids, h_mask = encode(heldout, tokenizer, n_positions)
        s = sequence_scores(model, h_ids, h_mask)
        loss_h = float(np.sum(s["loss"] * s["n_tokens"]) / np.sum(s["n_tokens"]))  # per token
        meta |= {"heldout_texts": len(heldout), "heldout_loss": loss_h, "heldout_perplexity": math.exp(loss_h)}
        log.info("pretrain: held-out loss %.4f (perplexity %.1f)", loss_h, math.exp(loss_h))
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "umia.json").write_text(json.dumps(meta, indent=1))
    return model


# ------------------------------------------------------------------------------------ unlearning
def finetune(model: nn.Module, forget: Batch, retain: Batch, s: Mapping, gen: torch.Generator) -> None:
    """Fine-tune on the retain set only (forgetting F by interference)."""
    _descend(model, retain, s, gen, "unlearn finetune")


def gradient_ascent(model: nn.Module, forget: Batch, retain: Batch, s: Mapping, gen: torch.Generator) -> None:
    """Gradient ascent on the forget set's LM loss (Jang et al., ACL 2023; the TOFU baseline)."""
    ((ids, mask),) = _to(model, forget)
    if len(ids) == 0:
        return
    bs, total = _steps(s, len(ids))
    opt, sched = _optimiser(model, s, total)
    idx = batch_indices(len(ids), bs, total, gen).to(ids.device)
    model.train()
    for step in range(total):
        _step(opt, sched, -lm_loss(model, ids[idx[step]], mask[idx[step]]), model, s.get("clip", 1.0))


def neggrad_plus(model: nn.Module, forget: Batch, retain: Batch, s: Mapping, gen: torch.Generator) -> None:
    """Gradient difference (NegGrad+, Kurmanji et al. 2023; TOFU's grad_diff): descend on a retain
    batch while ascending on a forget batch, loss = alpha * L(retain) - (1 - alpha) * L(forget);
    ``epochs`` passes over the retain set."""
    (fi, fm), (ri, rm) = _to(model, forget, retain)
    if len(fi) == 0:
        return finetune(model, forget, retain, s, gen)
    bs, total = _steps(s, len(ri))
    alpha = s["alpha"]
    opt, sched = _optimiser(model, s, total)
    ir = batch_indices(len(ri), bs, total, gen).to(ri.device)
    jf = batch_indices(len(fi), min(bs, len(fi)), total, gen).to(fi.device)
    model.train()
    for step in range(total):
        loss = alpha * lm_loss(model, ri[ir[step]], rm[ir[step]]) - (1 - alpha) * lm_loss(
            model, fi[jf[step]], fm[jf[step]]
        )
        _step(opt, sched, loss, model, s.get("clip", 1.0))


def npo_loss(loglik: torch.Tensor, ref_loglik: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO's loss (Zhang et al., COLM 2024), (2/beta) * mean log(1 + (pi/pi_ref)^beta), from
    sequence log-likelihoods log pi(y|x) of the model and of the reference: (B,) each. Written as
    softplus(beta * log-ratio), which is stable; it is (2/beta) log 2 where pi = pi_ref."""
    return (2 / beta) * F.softplus(beta * (loglik - ref_loglik)).mean()


@torch.no_grad()
def _loglik_all(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, batch_size: int) -> torch.Tensor:
    model.eval()
    bs = batch_size
    parts = [sequence_loglik(model, ids[i : i + bs], mask[i : i + bs]) for i in range(0, len(ids), bs)]
    return torch.cat(parts)  # (n,)


def npo(model: nn.Module, forget: Batch, retain: Batch, s: Mapping, gen: torch.Generator) -> None:
    """Negative Preference Optimization (Zhang et al. 2024, "Negative Preference Optimization:
    From Catastrophic Collapse to Effective Unlearning"): minimise ``npo_loss`` over forget
    batches, the reference being the starting model (its sequence log-likelihoods of the forget
    set are computed once, before the first step), plus ``retain_weight`` * L(retain) when it is
    positive (NPO+RT). Settings: beta (default 0.1), retain_weight (default 0)."""
    (fi, fm), (ri, rm) = _to(model, forget, retain)
    if len(fi) == 0:
        return
    beta, w = s.get("beta", 0.1), s.get("retain_weight", 0.0)
    bs, total = _steps(s, len(fi))
    ref = _loglik_all(model, fi, fm, bs)  # (n_forget,)
    opt, sched = _optimiser(model, s, total)
    jf = batch_indices(len(fi), bs, total, gen).to(fi.device)
    use_retain = w > 0 and len(ri) > 0
    ir = batch_indices(len(ri), min(s["batch_size"], len(ri)), total, gen).to(ri.device) if use_retain else None
    model.train()
    for step in range(total):
        j = jf[step]
        loss = npo_loss(sequence_loglik(model, fi[j], fm[j]), ref[j], beta)
        if use_retain:
            loss = loss + w * lm_loss(model, ri[ir[step]], rm[ir[step]])
        _step(opt, sched, loss, model, s.get("clip", 1.0))


LM_METHODS: dict[str, LMMethod] = {
    "finetune": finetune,
    "gradient_ascent": gradient_ascent,
    "neggrad_plus": neggrad_plus,
    "npo": npo,
}
