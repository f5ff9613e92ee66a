"""Per shadow model, a LoRA adapter against full fine-tuning of the same base, through the code the
shard jobs run (``TextTask.train``, ``jobs._unlearn_one``, ``TextTask.score``): fine-tuning time,
unlearning time per method, scoring throughput (tokens per second), peak GPU memory and the bytes a
checkpoint keeps; then scoring throughput by batch size, which says whether putting more rows
(several adapters' worth) into one forward pass would pay.

    python benchmarks/lora_speed.py results/imdb-base [--gpt2-124m] [--models 3]

RESULTS is a text experiment's folder with its corpus (data/corpus.parquet), candidates
(plan/candidates.parquet) and pretrained base (base/). ``--gpt2-124m`` adds a randomly initialised
base of GPT-2 small's shape (12 layers, width 768; the experiment's tokenizer), for speed only.
Times are medians over the models after the first (which carries the warm-up). The fine-tuning's
learning rate (``RECIPE``) does not change its time; the unlearning settings are config/imdb.yaml's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save

from umia import methods, plan
from umia.stages import shards as jobs
from umia.tasks.text import lm
from umia.tasks.text.task import TextTask

RECIPE = {"epochs": 1, "batch_size": 32, "lr": 3e-4, "weight_decay": 0.0, "warmup": 0.1}
UNLEARN = {  # config/imdb.yaml's settings
    "gradient_ascent": {"epochs": 1, "lr": 2e-5, "batch_size": 16},
    "npo": {"epochs": 2, "lr": 5e-5, "batch_size": 16, "beta": 0.1, "retain_weight": 1.0},
}
LORA = {"kind": "lora", "rank": 8, "alpha": 16, "target_modules": None}


def _sync(t: TextTask) -> None:
    if t.device.type == "cuda":
        torch.cuda.synchronize()


def _ckpt_bytes(state: dict) -> int:
    return len(save({k: v.contiguous() for k, v in state.items()}))


def measure(corpus: Path, candidates: Path, base: Path, adapter: dict | None, n_models: int, seed: int = 0) -> dict:
    context = json.loads((base / "config.json").read_text())["n_positions"]  # the experiment's max_tokens
    t = TextTask(str(corpus), str(candidates), "auto", None, base=str(base), max_tokens=context, adapter=adapter)
    if t.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    out = {"mode": "full" if adapter is None else f"lora r={adapter['rank']}", "params": t.n_params}
    keep = {i: t.masks(seed, i)[0] for i in range(n_models)}
    train_s, trained = [], {}
    for model_id, model, seconds in t.train(keep, RECIPE, seed):
        train_s.append(seconds)
        trained[model_id] = t.state(model)
        out["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
        del model
    out["finetune_s"] = statistics.median(train_s[1:] or train_s)
    out["finetune_tokens"] = int(t.mask[: t.n_pool][keep[0]].sum())
    out["ckpt_bytes"] = _ckpt_bytes(trained[0])
    score_s = []
    for i in range(n_models):
        model = t.load_model(trained[i])
        _sync(t)
        t0 = time.perf_counter()
        t.score(model)
        _sync(t)
        score_s.append(time.perf_counter() - t0)
    out["score_s"] = statistics.median(score_s[1:] or score_s)
    out["score_tokens_per_s"] = int(t.mask.sum()) / out["score_s"]
    for name, settings in UNLEARN.items():
        fn, _, s = methods.resolve(name, settings)
        secs = []
        for i in range(n_models):
            _sync(t)
            t0 = time.perf_counter()
            jobs._unlearn_one(t, fn, name, name, s, trained[i], i, seed, 4, None, keep_state=False)
            _sync(t)
            secs.append(time.perf_counter() - t0)
        out[f"{name}_s"] = statistics.median(secs[1:] or secs)  # the method, its probes and scoring
    if t.device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    model = t.load_model(trained[0])
    for bs in (32, 128, 512):
        lm.sequence_scores(model, t.ids[:bs], t.mask[:bs], bs)  # warm-up of this shape
        _sync(t)
        t0 = time.perf_counter()
        lm.sequence_scores(model, t.ids, t.mask, bs)
        _sync(t)
        out[f"score_tok_s@{bs}"] = int(t.mask.sum()) / (time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--gpt2-124m", action="store_true")
    ap.add_argument("--models", type=int, default=3)
    a = ap.parse_args()
    corpus, candidates, base = (
        a.results / "data/corpus.parquet",
        a.results / "plan/candidates.parquet",
        a.results / "base",
    )
    bases = [("the experiment's base", base)]
    with tempfile.TemporaryDirectory() as tmp:
        if a.gpt2_124m:
            _, tok = lm.load_base(base, "cpu")
            context = json.loads((base / "config.json").read_text())["n_positions"]
            big = lm.new_model(
                tok, n_layer=12, n_embd=768, n_head=12, n_positions=context, seed=plan.derive_seed(0, "big")
            )
            big.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            bases.append(("GPT-2 124M shape (random weights)", Path(tmp)))
        rows = []
        for label, path in bases:
            for adapter in (None, LORA):
                r = measure(corpus, candidates, path, adapter, a.models)
                rows.append({"base": label, **r})
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
    cols = ["base", "mode", "params", "trainable", "finetune_tokens", "finetune_s", "gradient_ascent_s", "npo_s"]
    cols += ["score_s", "score_tokens_per_s", "ckpt_bytes", "peak_gib", "score_tok_s@32", "score_tok_s@128"]
    cols += ["score_tok_s@512"]
    print("\n| " + " | ".join(cols) + " |\n|" + " --- |" * len(cols))
    for r in rows:
        cells = [r.get(c, "") for c in cols]
        print("| " + " | ".join(f"{c:,.3f}" if isinstance(c, float) else str(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
