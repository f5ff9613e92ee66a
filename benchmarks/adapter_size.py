"""Checkpoint size per shadow model: full fine-tuning vs a LoRA adapter (train.adapter), for the
shapes of real pretrained bases (GPT-2 124M, Pythia-160M, a 1B Llama), built on the meta device
(no weights, no memory, no download). Prints bytes per model in float32, as umia saves them, and
what N models take. Timings need a GPU: benchmarks/gpu/ (still owed for adapters).

    python benchmarks/adapter_size.py [--rank 8] [--n 128]
"""

from __future__ import annotations

import argparse

import torch
from peft import get_peft_model, get_peft_model_state_dict
from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoXConfig, LlamaConfig

from umia.tasks.text import lm

SHAPES = {
    "gpt2 (124M)": GPT2Config(),
    "pythia-160m": GPTNeoXConfig(
        hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, vocab_size=50304
    ),
    "llama (1.1B, TinyLlama's shape)": LlamaConfig(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab_size=32000,
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--n", type=int, default=128, help="shadow models (originals) to total")
    a = ap.parse_args()
    print(f"{'base':34s} {'full / model':>14s} {'LoRA r=' + str(a.rank) + ' / model':>18s} {'ratio':>7s}  N={a.n}")
    for name, config in SHAPES.items():
        with torch.device("meta"):
            base = AutoModelForCausalLM.from_config(config)
        full = sum(p.numel() * 4 for p in base.parameters())  # tied embeddings once, as torch.save keeps them
        cfg = lm.lora_config({"kind": "lora", "rank": a.rank, "alpha": 2 * a.rank, "target_modules": None}, base)
        with torch.device("meta"):
            adapted = get_peft_model(base, cfg)
        lora = sum(t.numel() * 4 for t in get_peft_model_state_dict(adapted).values())
        print(
            f"{name:34s} {full / 2**20:11.1f} MiB {lora / 2**20:15.2f} MiB {full / lora:7.0f}  "
            f"{a.n * full / 2**30:.1f} GiB vs {a.n * lora / 2**30:.2f} GiB"
        )


if __name__ == "__main__":
    main()
