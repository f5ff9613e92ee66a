"""Pretrained causal LMs of three architecture families (tests/lm_families.py: GPT-2, GPT-NeoX as
Pythia, Llama 3's conventions), random weights in local folders, as ``lm.base_model``:
the encoding opens each review with the family's own bos, padding works without a pad token, and
on a two-sentence batch the statistics equal those of each sentence scored alone, computed here
by hand from the model's logits: masked positions contribute nothing. Then the base-model
checks of the config (a folder without a tokenizer, no network, not causal, a short context)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tests import lm_families as F
from umia.config import ConfigError, resolve
from umia.tasks.text import corpus, lm

from .test_config import _text

TEXTS = ["The plot was great and the cast was lovely.", "I saw it in Paris with Anna and Boris.", "Dull."] * 10
BATCH = ["The plot was great.", "I saw it in Paris with Anna and Boris, and the cast was lovely."]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {f: F.save(f, root / f, TEXTS) for f in F.FAMILIES}


def _by_hand(model, tokenizer, text: str, k: float) -> dict:
    """One sentence alone (no padding, no mask): bos, then its tokens; the mean log-probability of
    each next token, Min-K% over its lowest floor(k n) of them, top-1 hits."""
    ids = torch.tensor([[tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].double()
    lp = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None]).squeeze(-1).numpy()
    n = len(lp)
    kk = max(1, int(np.floor(n * k)))
    hits = (logits.argmax(-1) == ids[0, 1:]).double().mean().item()
    return {"phi": lp.mean(), "min_k": np.sort(lp)[:kk].mean(), "token_accuracy": hits, "n_tokens": n}


@pytest.mark.parametrize("family", F.FAMILIES)
def test_each_family_scores_a_padded_batch_as_its_sentences_alone(bases, family):
    model, tokenizer = lm.load_base(bases[family], "cpu")
    assert model.config.model_type == family
    assert (tokenizer.pad_token is None) == (family != "gpt_neox")  # Pythia has one, GPT-2 and Llama none
    ids, mask = corpus.encode(BATCH, tokenizer, max_tokens=64)
    assert (ids[:, 0] == tokenizer.bos_token_id).all()  # the family's own bos opens, once
    assert tokenizer.bos_token == F.SPECIALS[family]["bos_token"]
    lengths = mask.sum(1)
    assert lengths[0] < lengths[1] and mask[0, lengths[0] :].sum() == 0  # the short one is right-padded
    s = lm.sequence_scores(model, ids, mask, batch_size=2, k=0.2)
    for i, text in enumerate(BATCH):
        want = _by_hand(model, tokenizer, text, 0.2)
        assert s["n_tokens"][i] == want["n_tokens"] == lengths[i] - 1
        for key in ("phi", "min_k", "token_accuracy"):
            np.testing.assert_allclose(s[key][i], want[key], rtol=1e-5, atol=1e-6, err_msg=f"{family} {key} row {i}")
    # whatever sits at the padded positions changes nothing
    noisy = ids.clone()
    noisy[~mask] = torch.randint(len(tokenizer), (int((~mask).sum()),), generator=torch.Generator().manual_seed(1))
    s2 = lm.sequence_scores(model, noisy, mask, batch_size=2, k=0.2)
    np.testing.assert_allclose(s2["phi"], s["phi"], rtol=1e-6, atol=1e-7)
    # the training loss is the token-weighted mean of the same log-probabilities, and its gradient
    # does not see the padded positions either
    loss = lm.lm_loss(model, ids, mask)
    want = -(s["phi"] * s["n_tokens"]).sum() / s["n_tokens"].sum()
    np.testing.assert_allclose(loss.item(), want, rtol=1e-5)
    emb = model.get_input_embeddings().weight
    emb.grad = None
    lm.lm_loss(model, noisy, mask).backward()
    g_noisy = emb.grad.clone()
    emb.grad = None
    loss.backward()
    torch.testing.assert_close(emb.grad, g_noisy)


def _base_error(schema, tmp_path, base, max_tokens: int = 40) -> str:
    with pytest.raises(ConfigError) as e:
        resolve(_text(tmp_path, lm={"base_model": str(base)}, dataset={"max_tokens": max_tokens}), schema)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_each_family_is_accepted_as_base_model(schema, bases, tmp_path):
    for base in bases.values():
        cfg = resolve(_text(tmp_path, lm={"base_model": str(base)}, dataset={"max_tokens": 64}), schema)
        assert cfg["lm"]["base_model"] == str(base)


def test_base_model_bad_input(schema, bases, tmp_path):
    no_tok = tmp_path / "no-tokenizer"
    shutil.copytree(bases["llama"], no_tok)
    for p in no_tok.iterdir():
        if p.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            p.unlink()
    assert (
        "has no tokenizer that loads; save the model's tokenizer into it with tokenizer.save_pretrained"
        in _base_error(schema, tmp_path, no_tok)
    )
    gpt2 = tmp_path / "gpt2-no-tokenizer"
    shutil.copytree(bases["gpt2"], gpt2)
    for p in gpt2.iterdir():
        if p.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            p.unlink()
    assert "has no tokenizer that loads" in _base_error(schema, tmp_path, gpt2)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has no model config.json" in _base_error(schema, tmp_path, empty)
    assert "is not a folder; point it at a folder written by save_pretrained" in _base_error(
        schema, tmp_path, tmp_path / "x"
    )
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(tmp_path / "bert")
    assert "is a 'bert' model (BertModel), not a causal language model" in _base_error(
        schema, tmp_path, tmp_path / "bert"
    )
    assert "'dataset.max_tokens': 65 tokens is longer than the context" in _base_error(
        schema, tmp_path, bases["gpt2"], 65
    )
    assert "set dataset.max_tokens to at most 64" in _base_error(schema, tmp_path, bases["gpt_neox"], 65)


def test_an_unreachable_hub_name_says_to_point_at_a_local_folder(schema, tmp_path, monkeypatch):
    """What transformers raises for a hub name it cannot fetch (offline, or not on the hub) becomes
    one line; the hub's own error is stood in for, so the test means the same with a network."""
    import transformers

    def offline(name, *args, **kwargs):
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load the files of {name}.\nCheck ...")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", offline)
    msg = _base_error(schema, tmp_path, "EleutherAI/pythia-70m")
    assert "'EleutherAI/pythia-70m' is not a local folder and the hub cannot give it here" in msg
    assert "We couldn't connect to 'https://huggingface.co'" in msg and "point lm.base_model at that folder" in msg
