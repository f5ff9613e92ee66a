"""Causal language models for the text task: a small GPT-2-style base model pretrained from
scratch (or any hub model), the LM loss and the sequence statistics for the attacks.

Data are ``(ids, mask)`` pairs from ``umia.tasks.text.corpus.encode``: ids (n, T) int64, mask (n, T) bool with
each row's real tokens a prefix (right padding). A model is scored on its real next-token
predictions: position t predicts token t+1 wherever token t+1 is real, so a row of L real tokens
(bos included) has L - 1 predictions.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from umia.errors import UmiaError
from umia.io import atomic_dir
from umia.runtime.device import autocast, pick_device
from umia.tasks import optim
from umia.tasks.text.corpus import encode, zlib_lengths

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]  # (ids (n, T) int64, mask (n, T) bool)


# ------------------------------------------------------------------------------- models and devices
def _quiet_transformers() -> None:
    """No progress bars when loading or saving weights: jobs log one line per event instead."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


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
    return model.to(pick_device(device)).eval(), tokenizer


# ------------------------------------------------------------------------------------ adapters
def _linear_names(model: nn.Module) -> list[str]:
    """The last name part of each linear layer (nn.Linear, GPT-2's Conv1D) of ``model``, once each."""
    names = [n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m).__name__ in ("Linear", "Conv1D")]
    return list(dict.fromkeys(names))


def lora_config(adapter: Mapping, base: nn.Module):
    """The ``peft.LoraConfig`` of ``train.adapter`` ({kind: lora, rank, alpha, target_modules}) for
    ``base``; raises UmiaError (one line) when a target module matches no layer of the base, or
    when target_modules is null and peft knows no default for the base's architecture."""
    from peft import LoraConfig
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    key = "config key 'train.adapter.target_modules'"
    layers = _linear_names(base)
    targets = adapter.get("target_modules")
    model_type = getattr(getattr(base, "config", None), "model_type", None)
    if targets is None:
        if model_type not in DEFAULTS:
            raise UmiaError(
                f"{key}: null, and peft has no default for {model_type!r} models; name the linear layers "
                f"to adapt, e.g. [{', '.join(layers[:4])}] (the base's are {', '.join(layers)})"
            )
        targets = list(DEFAULTS[model_type])
    names = [n for n, _ in base.named_modules()]
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise UmiaError(
            f"{key}: {', '.join(map(repr, missing))} match no layer of the base model; its linear layers are "
            f"{', '.join(layers)}"
        )
    conv1d = any(type(m).__name__ == "Conv1D" and n.rsplit(".", 1)[-1] in targets for n, m in base.named_modules())
    return LoraConfig(
        r=int(adapter["rank"]),
        fan_in_fan_out=conv1d,  # GPT-2's Conv1D stores its weight transposed
        lora_alpha=float(adapter["alpha"]),
        lora_dropout=0.0,  # deterministic: dropout would draw from torch's global generator
        target_modules=list(targets),
        bias="none",
        task_type="CAUSAL_LM",
    )


def with_adapter(base: nn.Module, config, seed: int, state: Mapping | None = None) -> nn.Module:
    """A copy of ``base`` with a fresh LoRA adapter (``config``; A drawn from ``seed``, B zero, so it
    starts as the base), or with the adapter weights ``state`` (``adapter_state``'s); only the
    adapter is trainable."""
    from peft import get_peft_model, set_peft_model_state_dict

    model = copy.deepcopy(base)
    dev = device_of(base)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        model = get_peft_model(model, config)
    if state is not None:
        loaded = set_peft_model_state_dict(model, dict(state))
        missing = [k for k in loaded.missing_keys if "lora_" in k]
        if loaded.unexpected_keys or missing:
            raise UmiaError(
                f"the checkpoint's adapter does not fit this base model ({len(loaded.unexpected_keys)} unknown and "
                f"{len(missing)} missing weights, e.g. {(loaded.unexpected_keys + missing)[0]}); train.adapter or "
                "lm.base_model changed since it was written"
            )
    return model


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's weights only (what a checkpoint of an adapter model keeps), on the CPU."""
    from peft import get_peft_model_state_dict

    return {
        k: v.detach().to("cpu", copy=True)
        for k, v in get_peft_model_state_dict(model, save_embedding_layers=False).items()
    }


# --------------------------------------------------------------------------------- likelihoods
def forward_logits(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    with autocast(ids.device):
        return model(input_ids=ids, attention_mask=mask.long(), use_cache=False).logits  # (B, T, V)


def token_logprobs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each next token. ids, mask: (B, T) on the model's device.

    Returns lp: (B, T-1) float32 (log_softmax in float32; lp[:, t] = log p(ids[:, t+1] | ids[:, :t+1]))
    and valid: (B, T-1) bool, True where ids[:, t+1] is a real token. Differentiable.
    """
    logits = forward_logits(model, ids, mask)[:, :-1].float()  # (B, T-1, V)
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
        logits = forward_logits(model, x, m)[:, :-1].float()  # (B, w-1, V)
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
    device = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    sizes = {"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, "n_positions": n_positions}
    model = new_model(tokenizer, **sizes, seed=seed).to(device)
    ids, mask = (t.to(device) for t in encode(texts, tokenizer, n_positions))
    bs = min(batch_size, len(ids))
    opt = optim.adamw(
        model, lr, steps, weight_decay=weight_decay, warmup=warmup, decay="cosine", betas=(0.9, 0.95), clip=clip
    )
    gen = torch.Generator(device=device).manual_seed(seed)
    idx = optim.batch_indices(len(ids), bs, steps, gen)
    every = max(1, steps // 10)
    model.train()
    loss_sum = torch.zeros((), device=device)
    for step in range(steps):
        loss = lm_loss(model, ids[idx[step]], mask[idx[step]])
        opt.step(loss)
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
