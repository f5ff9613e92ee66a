"""Small randomly initialised causal LMs of three architecture families that transformers ships,
each saved with ``save_pretrained`` (model and its own tokenizer) into a local folder, as a
researcher's ``lm.base_model`` would be. The tokenizers follow each family's conventions:

- ``gpt2``: one token ``<|endoftext|>`` opens and closes a document; no pad token (as GPT-2's);
- ``gpt_neox`` (Pythia): ``<|endoftext|>`` as bos and eos, a pad token ``<|padding|>`` of its own;
- ``llama`` (Llama 3): ``<|begin_of_text|>`` opens, ``<|end_of_text|>`` closes; no pad token;
  grouped-query attention (one key/value head for two query heads) and rotary positions.
"""

from __future__ import annotations

from pathlib import Path

import torch

SPECIALS = {
    "gpt2": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"},
    "gpt_neox": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|padding|>"},
    "llama": {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"},
}
FAMILIES = tuple(SPECIALS)


def tokenizer(family: str, texts: list[str], vocab_size: int = 400):
    """A byte-level BPE trained on ``texts`` with the family's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = SPECIALS[family]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(dict.fromkeys(specials.values())),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


def model(family: str, tok, context: int = 64, seed: int = 0):
    """A one-layer model of ``family``, 32 wide, its vocabulary ``tok``'s, initialised from ``seed``."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    common = {"vocab_size": len(tok), **ids}
    if family == "gpt2":
        cls, cfg = GPT2LMHeadModel, GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=context, **common)
    elif family == "gpt_neox":
        cls = GPTNeoXForCausalLM
        cfg = GPTNeoXConfig(
            num_hidden_layers=1,
            hidden_size=32,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=context,
            **common,
        )
    else:
        cls = LlamaForCausalLM
        cfg = LlamaConfig(
            num_hidden_layers=1,
            hidden_size=32,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=64,
            max_position_embeddings=context,
            **common,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(cfg).eval()


def save(family: str, folder: Path, texts: list[str], context: int = 64, seed: int = 0) -> Path:
    """Write a random ``family`` model and its tokenizer to ``folder`` with ``save_pretrained``."""
    tok = tokenizer(family, texts)
    model(family, tok, context, seed).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
