"""LoRA shadow models (train.adapter): an adapter over the frozen base starts as the base, trains
only itself, is what a checkpoint keeps, and loads back to the same model; bad adapter input
gives one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests import lm_families as F
from umia.config import ConfigError, resolve
from umia.errors import UmiaError
from umia.tasks.text import corpus, lm

from .test_config import _text

TEXTS = ["The plot was great and the cast was lovely.", "I saw it in Paris with Anna and Boris.", "Dull."] * 10
LORA = {"kind": "lora", "rank": 4, "alpha": 8, "target_modules": None}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    return {f: F.save(f, root / f, TEXTS) for f in F.FAMILIES}


@pytest.mark.parametrize("family", F.FAMILIES)
def test_an_adapter_starts_as_the_base_trains_only_itself_and_round_trips(bases, family):
    base, tok = lm.load_base(bases[family], "cpu")
    base.requires_grad_(False)
    cfg = lm.lora_config(LORA, base)  # peft's default targets for the family
    ids, mask = corpus.encode(TEXTS[:3], tok, 64)
    before = lm.sequence_scores(base, ids, mask)["phi"]
    model = lm.with_adapter(base, cfg, seed=1)
    np.testing.assert_allclose(lm.sequence_scores(model, ids, mask)["phi"], before, rtol=1e-6)  # B = 0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        lm.lm_loss(model, ids, mask).backward()
        opt.step()
    after = lm.sequence_scores(model, ids, mask)["phi"]
    assert after.mean() > before.mean() + 0.1  # it learned the three sentences
    for n, p in model.named_parameters():
        if n in frozen:
            torch.testing.assert_close(p, frozen[n])  # the base is untouched
    state = lm.adapter_state(model)
    assert state and all("lora_" in k for k in state)
    full = sum(v.numel() for v in base.state_dict().values())
    assert sum(v.numel() for v in state.values()) < full / 5  # the checkpoint is the adapter only
    back = lm.with_adapter(base, cfg, seed=99, state=state)  # another seed: the state decides
    np.testing.assert_allclose(lm.sequence_scores(back, ids, mask)["phi"], after, rtol=1e-6)
    again = lm.with_adapter(base, cfg, seed=1)
    a = dict(again.named_parameters())
    for n, p in lm.with_adapter(base, cfg, seed=1).named_parameters():
        torch.testing.assert_close(p, a[n])  # one seed, one initial adapter


def test_target_modules_that_match_nothing_name_the_base_layers(bases):
    base, _ = lm.load_base(bases["llama"], "cpu")
    with pytest.raises(UmiaError) as e:
        lm.lora_config({**LORA, "target_modules": ["q_proj", "c_attn"]}, base)
    msg = str(e.value)
    assert "\n" not in msg and "train.adapter.target_modules': 'c_attn' match no layer of the base model" in msg
    assert "its linear layers are q_proj, k_proj, v_proj, o_proj" in msg
    assert lm.lora_config({**LORA, "target_modules": ["q_proj", "o_proj"]}, base).target_modules == {"q_proj", "o_proj"}


def test_adapter_config_errors(schema, raw_config, tmp_path):
    with pytest.raises(ConfigError, match="config key 'train.adapter.rank'"):
        resolve(_text(tmp_path, train={"adapter": {"kind": "lora", "rank": 0}}), schema)
    cfg = resolve(_text(tmp_path, train={"adapter": {"kind": "lora"}}), schema)
    assert cfg["train"]["adapter"] == {"kind": "lora", "rank": 8, "alpha": 16, "target_modules": None}
    raw_config["train"]["adapter"] = {"kind": "lora"}
    with pytest.raises(ConfigError, match="'train.adapter': adapters are for language models"):
        resolve(raw_config, schema)
