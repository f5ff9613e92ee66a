"""The language-model task's building blocks (umia.tasks.text.corpus, umia.tasks.text.lm), its task
(umia.tasks.text.task: training, scoring, the shard job) and the unlearning methods for it (umia.methods.builtin) on a
tiny synthetic corpus and a GPT-2-style model of one layer, 32 wide, on the CPU.

The synthetic reviews fill a fixed template with words drawn at random: a model can learn the
template from a pretraining corpus (held-out loss falls), and only memorise the random words of
the reviews it is fine-tuned on (a membership signal)."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from umia import io, methods, plan, registry
from umia.errors import DataError
from umia.methods import Context, Probe, builtin
from umia.tasks.text import corpus as text
from umia.tasks.text import lm
from umia.tasks.text.task import TextTask

IMDB = Path(__file__).resolve().parents[3] / "shared" / "data" / "imdb.parquet"
SIZES = {"n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 48}
ADJ = "good bad great awful dull funny boring brilliant silly lovely weak strong".split()
NOUN = "movie film plot actor cast script ending story music director scene camera".split()
VERB = "loved hated enjoyed watched missed liked disliked praised".split()


def reviews(n: int, seed: int) -> list[str]:
    """n synthetic raw reviews (with HTML breaks), seeded."""
    r = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b, v = r.choice(ADJ, 4), r.choice(NOUN, 3), r.choice(VERB, 2)
        out.append(
            f"The {b[0]} was {a[0]} and the {b[1]} was {a[1]}. I {v[0]} it,<br /><br />"
            f"but the {b[2]} was {a[2]} and {a[3]}. We {v[1]} it."
        )
    return out


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: a second thread only adds overhead on 2 shared cores
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return [text.clean(t) for t in reviews(300, seed=0)]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory, corpus) -> Path:
    out = tmp_path_factory.mktemp("lm") / "tokenizer"
    text.train_tokenizer(corpus[:200], 300, out)
    return out


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, corpus, tok_dir) -> Path:
    out = tmp_path_factory.mktemp("lm") / "base"
    lm.pretrain_base(
        corpus[:200], tok_dir, out, **SIZES, steps=60, batch_size=16, lr=1e-2, seed=0, device="cpu",
        heldout=corpus[200:],
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def base(base_dir):
    """(model, tokenizer) loaded back from the pretrained folder; copy the model before changing it."""
    return lm.load_base(base_dir, "cpu")


@pytest.fixture(scope="module")
def members(base) -> tuple[torch.Tensor, torch.Tensor]:
    """64 fresh reviews (none in the pretraining corpus), encoded: the first 32 are members."""
    return text.encode([text.clean(t) for t in reviews(64, seed=1)], base[1], 48)


# ---------------------------------------------------------------------------------------- corpus
def test_clean():
    assert text.clean("Great.<br /><br />Loved it.") == "Great.\nLoved it."
    assert text.clean("a<br/>b<br>c<BR />d") == "a\nb\nc\nd"
    assert text.clean("  too   many \t spaces\n\n\n here ") == "too many spaces\nhere"
    assert text.clean("a <br /> <br /> b") == "a\nb"
    assert text.clean("<br /> ") == ""
    assert text.clean("plain text") == "plain text"


def test_deduplicate_keeps_the_first_doc_id_across_splits():
    df = pd.DataFrame(
        {
            "doc_id": [5, 1, 2, 3, 4, 0],
            "split": ["test", "train", "train", "test", "test", "train"],
            "label": [1, 0, 1, 0, 1, 1],
            "text": ["other", "Same  text.<br />x", "unique", "Same text.\nx", "other ", "first"],
        }
    )
    out = text.deduplicate(df)
    # doc 3 repeats doc 1 (train) in the test split; doc 5 repeats doc 4 (test)
    assert out["doc_id"].tolist() == [0, 1, 2, 4]
    assert out.loc[out["doc_id"] == 1, "text"].item() == "Same  text.<br />x"  # text kept as it came


def _write_acl_imdb(root: Path, rows: list[tuple[str, str, int, str]]) -> None:
    for split, name, file_id, body in rows:
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{file_id}_{7 if name == 'pos' else 2}.txt").write_text(body, encoding="utf-8")


def test_acl_imdb_folder_and_parquet_give_the_same_frame(tmp_path):
    # file ids 10 and 2: numeric order (2 before 10), not the names' order
    files = [
        ("train", "neg", 10, "Bad.<br />Really bad."),
        ("train", "neg", 2, "Dull film"),
        ("train", "pos", 0, "Très bien — loved it\n"),
        ("test", "neg", 1, "Awful"),
        ("test", "pos", 3, "Superb"),
        ("test", "pos", 1, "Fine"),
    ]
    _write_acl_imdb(tmp_path / "aclImdb", files)
    (tmp_path / "aclImdb" / "train" / "unsup").mkdir()  # unlabelled reviews are not read
    (tmp_path / "aclImdb" / "train" / "unsup" / "0_0.txt").write_text("unlabelled")
    expected = pd.DataFrame(
        {
            "doc_id": np.arange(6, dtype=np.int64),
            "split": ["train"] * 3 + ["test"] * 3,
            "label": np.array([0, 0, 1, 0, 1, 1], dtype=np.int64),
            "text": ["Dull film", "Bad.<br />Really bad.", "Très bien — loved it\n", "Awful", "Fine", "Superb"],
        }
    )
    expected.astype({"split": "str", "text": "str"}).iloc[::-1].to_parquet(tmp_path / "imdb.parquet")
    from_folder = text.load_reviews(tmp_path / "aclImdb")
    from_parquet = text.load_reviews(tmp_path / "imdb.parquet")
    pd.testing.assert_frame_equal(from_folder, from_parquet)
    assert from_folder["text"].tolist() == expected["text"].tolist()
    assert from_folder["label"].tolist() == [0, 0, 1, 0, 1, 1]


def test_load_reviews_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        text.load_reviews(tmp_path / "missing.parquet")
    pd.DataFrame({"doc_id": [0], "text": ["x"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="lacks columns"):
        text.load_reviews(tmp_path / "bad.parquet")
    (tmp_path / "acl" / "train" / "neg").mkdir(parents=True)
    with pytest.raises(DataError, match="train/pos"):
        text.load_reviews(tmp_path / "acl")


def _frame(raw: list[str], n_train: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "doc_id": np.arange(len(raw)),
            "split": ["train"] * n_train + ["test"] * (len(raw) - n_train),
            "label": np.arange(len(raw)) % 2,
            "text": raw,
        }
    )


def test_split_corpus_is_disjoint_clean_deduplicated_and_seeded(tmp_path):
    raw = reviews(100, seed=2)
    raw[70] = raw[3].replace("<br /><br />", " <br/> ")  # a test review that is a train review, cleaned
    raw[71] = "<br />  "  # empty once cleaned
    df = _frame(raw, 60)
    c = text.split_corpus(df, pool_size=50, test_size=10, pretrain_size=None, seed=5)
    assert (len(c.pool), len(c.test), len(c.pretrain)) == (50, 10, 40 - 2)
    # members and held-out reviews alike (one split); the base pretrains on the other
    assert set(c.pool["split"]) == set(c.test["split"]) == {"train"} and set(c.pretrain["split"]) == {"test"}
    ids = [set(p["doc_id"]) for p in (c.pool, c.test, c.pretrain)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert 70 not in ids[2] and 71 not in ids[2]
    assert all("<br" not in t for t in c.pool["text"])
    assert c.pool["doc_id"].is_monotonic_increasing
    again = text.split_corpus(df, pool_size=50, test_size=10, seed=5)
    pd.testing.assert_frame_equal(c.pool, again.pool)
    pd.testing.assert_frame_equal(c.test, again.test)
    other = text.split_corpus(df, pool_size=50, test_size=10, seed=6)
    assert set(other.pool["doc_id"]) != ids[0]
    with pytest.raises(DataError, match="pool_size"):
        text.split_corpus(df, pool_size=61)
    with pytest.raises(DataError, match="only 60 train-split reviews"):
        text.split_corpus(df, pool_size=55, test_size=10)
    assert len(text.split_corpus(df, test_size=10).pool) == 50  # pool_size None: the rest of the train split
    # written and read back, with the scores table's example ids: pool first, then test
    text.write_corpus(c, str(tmp_path / "corpus.parquet"))
    back = text.read_corpus(str(tmp_path / "corpus.parquet"))
    pd.testing.assert_frame_equal(back.test, c.test)
    ex = pd.read_parquet(tmp_path / "corpus.parquet")
    assert ex.loc[ex["role"] != "pretrain", "example_id"].tolist() == list(range(60))
    assert (ex.loc[ex["role"] == "pretrain", "example_id"] == -1).all()


@pytest.mark.skipif(not IMDB.exists(), reason=f"{IMDB} is absent (real IMDB data is optional for tests)")
def test_imdb_duplicates_never_straddle_the_split():
    df = text.load_reviews(IMDB)
    assert len(df) == 50_000 and df["doc_id"].tolist() == list(range(50_000))
    dup = df["text"].duplicated(keep=False)
    sub = pd.concat([df[dup], df[~dup].iloc[::100]])  # every duplicated review, and a sample of the rest
    c = text.split_corpus(sub, seed=0)
    pool = set(c.pool["text"])
    assert not pool & set(c.pretrain["text"])
    assert len(c.pool) + len(c.pretrain) <= len(sub) - int(df["text"].duplicated().sum())
    first = df[dup].groupby("text")["doc_id"].min()  # of each group of identical texts, the first is kept
    kept = set(c.pool["doc_id"]) | set(c.pretrain["doc_id"])
    assert set(first) <= kept


# ------------------------------------------------------------------------------ tokenizer, encode
def test_tokenizer_saved_and_reloaded_encodes_identically(tok_dir, corpus):
    from transformers import AutoTokenizer

    fresh = text.train_tokenizer(corpus[:200], 300)
    loaded = AutoTokenizer.from_pretrained(tok_dir)
    assert len(loaded) == 300
    assert loaded.bos_token == loaded.eos_token == text.BOS and loaded.pad_token == text.PAD
    probe = [*corpus[200:210], "Unseen wörds: 🎬 and\ttabs"]
    a, b = text.encode(probe, fresh, 64), text.encode(probe, loaded, 64)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert text.decode(*b, loaded) == probe  # byte-level: lossless


def test_encode_pads_and_truncates_exactly(base):
    tok = base[1]
    texts_ = ["The movie was good.", "The plot was dull and the actor was weak and the cast was silly.", ""]
    plain = [tok(t, add_special_tokens=False)["input_ids"] for t in texts_]
    ids, mask = text.encode(texts_, tok, max_tokens=10)
    lengths = [min(len(p) + 1, 10) for p in plain]
    assert len(plain[1]) + 1 > 10  # the second row is cut
    assert ids.dtype == torch.int64 and mask.dtype == torch.bool
    assert ids.shape == (3, max(lengths))
    assert mask.sum(1).tolist() == lengths
    for row, m, p, n in zip(ids, mask, plain, lengths, strict=True):
        assert row[0] == tok.bos_token_id
        assert row[1:n].tolist() == p[: n - 1]
        assert m[:n].all() and not m[n:].any()
        assert (row[n:] == tok.pad_token_id).all()
    wide, _ = text.encode(texts_, tok, max_tokens=100)
    assert wide.shape[1] == len(plain[1]) + 1  # padded to the longest, not to max_tokens


# ---------------------------------------------------------------------------------- statistics
def test_sequence_scores_match_a_hand_computation(base):
    model, tok = base
    texts_ = ["The film was awful and the cast was dull.", "I loved it."]
    ids, mask = text.encode(texts_, tok, 48)
    assert mask.sum(1).tolist()[0] > mask.sum(1).tolist()[1]  # the second row is padded
    k = 0.3
    s = lm.sequence_scores(model, ids, mask, batch_size=2, texts=texts_, k=k)
    for i, t in enumerate(texts_):
        seq = ids[i, mask[i]]  # the row alone, unpadded
        with torch.no_grad():
            logits = model(seq[None]).logits[0].double()  # (L, V)
        lp = torch.log_softmax(logits, -1)[torch.arange(len(seq) - 1), seq[1:]].numpy()  # (L-1,)
        n = len(lp)
        assert s["n_tokens"][i] == n
        assert s["phi"][i] == pytest.approx(lp.mean(), abs=1e-5)
        assert s["loss"][i] == pytest.approx(-lp.mean(), abs=1e-5)
        low = np.sort(lp)[: max(1, int(n * k))]
        assert s["min_k"][i] == pytest.approx(low.mean(), abs=1e-5)
        assert s["zlib_ratio"][i] == pytest.approx(-lp.mean() / len(zlib.compress(t.encode())), rel=1e-5)
        acc = (logits[:-1].argmax(-1) == seq[1:]).double().mean().item()
        assert s["token_accuracy"][i] == pytest.approx(acc, abs=1e-6)
    one = lm.sequence_scores(model, ids, mask, batch_size=1)  # batching does not change the scores
    np.testing.assert_allclose(one["phi"], s["phi"], atol=1e-5)
    assert "zlib_ratio" not in one
    only_bos = lm.sequence_scores(model, *text.encode(["", "The film."], tok, 48))
    assert np.isnan(only_bos["phi"][0]) and np.isnan(only_bos["min_k"][0]) and only_bos["n_tokens"][0] == 0


def test_pretraining_lowers_heldout_loss(base, base_dir, corpus):
    model, tok = base
    ids, mask = text.encode(corpus[200:], tok, 48)
    untrained = lm.new_model(tok, **SIZES, seed=0)
    before = lm.sequence_scores(untrained, ids, mask)["loss"].mean()
    after = lm.sequence_scores(model, ids, mask)["loss"].mean()
    assert before > 0.9 * math.log(300)  # chance over a vocabulary of 300
    assert after < 0.5 * before
    meta = json.loads((base_dir / "umia.json").read_text())
    assert meta["heldout_loss"] == pytest.approx(after, rel=0.02) and meta["steps"] == 60
    assert (base_dir / "model.safetensors").exists()
    assert all(not m.p for m in model.modules() if isinstance(m, torch.nn.Dropout))


# ---------------------------------------------------------------------------------- the task
@pytest.fixture(scope="module")
def corpus_path(tmp_path_factory, corpus) -> Path:
    """A prepared corpus: the 64 reviews of ``members`` as the pool, 16 held-out test reviews."""
    pool = [text.clean(t) for t in reviews(64, seed=1)]
    parts = {"pool": pool, "test": corpus[200:216], "pretrain": corpus[:200]}
    frames = {}
    for role, texts_ in parts.items():
        n = len(texts_)
        split = "train" if role == "pool" else "test"
        frames[role] = pd.DataFrame(
            {"doc_id": np.arange(n) + 1000 * len(frames), "split": split, "label": np.arange(n) % 2, "text": texts_}
        )
    out = tmp_path_factory.mktemp("corpus") / "corpus.parquet"
    text.write_corpus(text.Corpus(**frames), str(out))
    return out


@pytest.fixture(scope="module")
def task(corpus_path, base_dir) -> TextTask:
    return TextTask(str(corpus_path), None, "cpu", None, base=str(base_dir), max_tokens=48)


def _keep(task, ids) -> torch.Tensor:
    keep = torch.zeros(task.n_pool, dtype=torch.bool)
    keep[list(ids)] = True
    return keep


def _finetune(task, keep, seed=1, model_id=0, **recipe):
    """The task's training of one model on ``keep`` (TextTask.train, a shadow model's training)."""
    rec = {"epochs": 10, "batch_size": 8, "lr": 3e-3, "weight_decay": 0.0, "warmup": 0.0, **recipe}
    ((got_id, model, seconds),) = task.train({model_id: keep}, rec, seed)
    assert got_id == model_id and seconds >= 0
    return model


def test_task_holds_the_pool_then_the_test_reviews(task, base, members):
    assert (task.n_pool, task.n_test, task.n_classes) == (64, 16, 2)
    assert task.labels.tolist() == [i % 2 for i in range(64)] + [i % 2 for i in range(16)]
    ids, mask = task.pool(_keep(task, range(64)))
    w = members[0].shape[1]  # members were encoded alone: padded to their own longest row
    assert torch.equal(mask[:, :w], members[1]) and not mask[:, w:].any()
    assert torch.equal(ids[:, :w][mask[:, :w]], members[0][members[1]])
    assert task.seen[:64] == text.decode(*members, base[1])
    model = task.load_model()
    assert model is not task.base
    assert all(torch.equal(v, base[0].state_dict()[k]) for k, v in model.state_dict().items())


def test_task_scores_every_review_and_its_tables(task, members):
    model = task.load_model()
    s = task.score(model)
    direct = lm.sequence_scores(model, task.ids, task.mask, texts=task.seen, k=0.2)
    assert s["phi"].shape == s["loss"].shape == s["correct"].shape == (1, 80)
    np.testing.assert_allclose(s["phi"][0], direct["phi"], rtol=1e-5)
    assert np.array_equal(s["correct"][0], direct["token_accuracy"] >= 0.5)
    sub = task.phi(model, members)  # any reviews, on the device: (1, n)
    np.testing.assert_allclose(sub.numpy()[0], s["phi"][0, :64], rtol=1e-4, atol=1e-5)
    assert task.phi(model, (members[0][:0], members[1][:0])).shape == (1, 0)
    tables = task.tables(s, 5, "original", "none")
    scores, stats = tables["scores"], tables["lm_stats"]
    assert len(scores) == len(stats) == 80 and set(scores["view"]) == {"identity"}
    assert scores["example_id"].tolist() == list(range(80)) and (scores["split"] == "pool").sum() == 64
    np.testing.assert_allclose(stats["zlib_ratio"], direct["zlib_ratio"], rtol=1e-6)
    assert (stats["n_tokens"] == direct["n_tokens"]).all() and (stats["model_id"] == 5).all()
    assert io.to_arrow(scores, io.SCORES).num_rows == io.to_arrow(stats, io.LM_STATS).num_rows == 80  # their schemas
    assert "perplexity" in task.describe(model, s, _keep(task, range(32)))


# ---------------------------------------------------------------------- fine-tuning, unlearning
def test_finetuning_leaves_a_membership_signal(task, members):
    ids, mask = members
    before = lm.sequence_scores(task.base, ids, mask)["phi"]
    model = _finetune(task, _keep(task, range(32)))
    gain = lm.sequence_scores(model, ids, mask)["phi"] - before
    assert gain[:32].mean() > gain[32:].mean() + 0.05, (gain[:32].mean(), gain[32:].mean())


def test_finetuning_is_deterministic(task):
    runs = []
    for seed, model_id in ((3, 0), (3, 0), (4, 0), (3, 1)):  # the order is seeded by seed and model id
        model = _finetune(
            task, _keep(task, range(16)), seed, model_id, epochs=1, batch_size=4, lr=1e-3, weight_decay=0.1
        )
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[3][k]) for k in runs[0])
    assert all(torch.equal(v, task.load_model().state_dict()[k]) for k, v in task.base.state_dict().items())


def _run(task, name, model, forget, retain, s, gen, probe=None):
    fn, _, s = methods.resolve(name, s)
    fn(Context(task, s, probe), model, forget, retain, s, gen)


def test_gradient_ascent_lowers_the_forget_likelihood(task, members):
    ids, mask = members
    model = task.load_model()
    before = lm.sequence_scores(model, ids[:8], mask[:8])["phi"]
    s = {"epochs": 2, "batch_size": 4, "lr": 1e-3}
    forget, retain = (ids[:8], mask[:8]), (ids[8:32], mask[8:32])
    _run(task, "gradient_ascent", model, forget, retain, s, torch.Generator().manual_seed(0))
    after = lm.sequence_scores(model, ids[:8], mask[:8])["phi"]
    assert (after < before).all() and after.mean() < before.mean() - 0.1


def test_npo_loss_known_answers():
    """(2/beta) mean softplus(beta (loglik - ref)): log-ratios 0 and log 3 at beta 1 give
    (2/1) (log 2 + log 4) / 2 = 3 log 2; at the reference it is (2/beta) log 2 for any beta."""
    loss = builtin.npo_loss(torch.tensor([0.0, math.log(3.0)]), torch.zeros(2), 1.0)
    assert loss.item() == pytest.approx(3 * math.log(2), rel=1e-6)
    for beta in (0.1, 0.5, 2.0):
        at_ref = builtin.npo_loss(torch.tensor([-5.0, -9.0]), torch.tensor([-5.0, -9.0]), beta)
        assert at_ref.item() == pytest.approx((2 / beta) * math.log(2), rel=1e-6)
    # stable far from the reference: softplus, not log(1 + exp) (which overflows to inf)
    far = builtin.npo_loss(torch.tensor([500.0]), torch.tensor([0.0]), 1.0)
    assert far.item() == pytest.approx(1000.0, rel=1e-6)


def test_npo_loss_at_the_reference_and_its_gradient(task, members):
    ids, mask = members[0][:8], members[1][:8]
    model = task.load_model()
    with torch.no_grad():
        ref = lm.sequence_loglik(model, ids, mask)
    beta = 0.5
    loglik = lm.sequence_loglik(model, ids, mask)
    loss = builtin.npo_loss(loglik, ref, beta)
    assert loss.item() == pytest.approx((2 / beta) * math.log(2), rel=1e-6)
    # at the reference the gradient is (2/beta) sigmoid(0) beta / B sum grad loglik = grad mean loglik
    params = [p for p in model.parameters() if p.requires_grad]
    g_npo = torch.autograd.grad(loss, params, retain_graph=True)
    g_ll = torch.autograd.grad(loglik.mean(), params)
    for a, b in zip(g_npo, g_ll, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        for p, g in zip(params, g_npo, strict=True):
            p -= 1e-2 * g  # one plain gradient step on the NPO loss
        after = lm.sequence_loglik(model, ids, mask)
    assert (after < ref).all()
    # the method itself: forget likelihood falls, reference = the starting model
    model = task.load_model()
    settings = {"epochs": 2, "batch_size": 4, "lr": 1e-3, "beta": 0.1, "retain_weight": 0.0}
    retain = (members[0][8:32], members[1][8:32])
    _run(task, "npo", model, (ids, mask), retain, settings, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert lm.sequence_loglik(model, ids, mask).mean() < ref.mean()


TEXT_METHODS = [m for m, spec in registry.METHODS.items() if "text" in spec.tasks]


@pytest.mark.parametrize("name", TEXT_METHODS)
def test_methods_plan_and_take_their_steps(task, members, name):
    ids, mask = members
    forget, retain = (ids[:6, :24], mask[:6, :24]), (ids[6:16, :24], mask[6:16, :24])
    settings = {"epochs": 2, "batch_size": 4, "lr": 1e-3, "alpha": 0.5, "beta": 0.1, "retain_weight": 1.0}
    if name == "per_example_stop":  # a retrain mean no review reaches: every step is taken
        settings |= {"check_every": 1, "target_phi": torch.full((6,), -1e9, device=task.device)}
    n = {"gradient_ascent": 6, "npo": 6}.get(name, 10)  # what an epoch passes over
    expected = 2 * math.ceil(n / 4)
    runs = []
    for _ in range(2):
        seen = []
        probe = Probe(4, lambda *a, seen=seen: seen.append(a))
        model = task.load_model()
        with probe.active(model):
            _run(task, name, model, forget, retain, settings, torch.Generator().manual_seed(7), probe)
        assert (probe.steps, probe.planned) == (expected, expected)
        assert seen == [(k, round(k * expected / 4), expected) for k in (1, 2, 3)]
        runs.append(model.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])  # same generator seed: same model
    assert not all(torch.equal(runs[0][k], task.base.state_dict()[k]) for k in runs[0])


def test_training_schedules_span_exactly_their_steps(task, tok_dir, corpus, tmp_path):
    """The learning rate each step uses. Fine-tuning 64 reviews for half an epoch of 8: 4 steps,
    warmup 0, linear decay 1 - step/4. Pretraining 3 steps, warmup 0.05 (a rise of
    max(1, round(0.15)) = 1 step to the peak), then a cosine 0.5 (1 + cos(pi (step - 1) / 2))."""
    seen = []
    handle = register_optimizer_step_post_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    try:
        _finetune(task, _keep(task, range(64)), epochs=0.5, batch_size=8, lr=1e-3)
        assert seen == pytest.approx([1e-3, 0.75e-3, 0.5e-3, 0.25e-3])
        seen.clear()
        small = {**SIZES, "n_positions": 16}
        lm.pretrain_base(
            corpus[:20], tok_dir, tmp_path / "b", **small, steps=3, batch_size=4, lr=1e-3, seed=0, device="cpu"
        )
        assert seen == pytest.approx([1e-3, 1e-3, 0.5e-3])
    finally:
        handle.remove()
    assert not list(tmp_path.glob(".b.tmp*"))  # written atomically, nothing left beside it
    loaded, _ = lm.load_base(tmp_path / "b", "cpu")
    assert loaded.config.n_positions == 16


def test_empty_forget_set_changes_nothing(task, members):
    ids, mask = members
    empty = (ids[:0], mask[:0])
    for name in ("gradient_ascent", "npo"):
        model = task.load_model()
        probe = Probe(4, lambda *a: None)
        with probe.active(model):
            s = {"epochs": 1, "batch_size": 4, "lr": 1e-3}
            _run(task, name, model, empty, (ids, mask), s, torch.Generator(), probe)
        assert probe.steps == probe.planned == 0
        assert all(torch.equal(v, task.base.state_dict()[k]) for k, v in model.state_dict().items())


# ------------------------------------------------------------------------------ the shard jobs
def test_text_shard_jobs_write_scores_lm_stats_and_trajectory(task, corpus_path, base_dir, tmp_path):
    from umia.stages.shards import load_models, train_shard, unlearn_shard

    cand = tmp_path / "candidates.parquet"
    ids = pd.DataFrame({"example_id": np.arange(10), "label": np.zeros(10, np.int16)})
    io.write_table(ids, cand, io.CANDIDATES, "t")
    job = dict(
        task="text", data=str(corpus_path), candidates=str(cand), shard=0, shard_size=2, seed=0, device="cpu",
        config_hash="t", task_args={"base": str(base_dir), "max_tokens": 48, "min_k": 0.2},
    )  # fmt: skip
    out = {k: str(tmp_path / f"o.{k}") for k in ("scores", "lm_stats", "ckpt")}
    recipe = {"epochs": 1, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "warmup": 0.0}
    train_shard(outputs=out, stage="original", recipe=recipe, **job)
    scores = io.read_table(out["scores"], io.SCORES, "t").to_pandas()
    stats = io.read_table(out["lm_stats"], io.LM_STATS, "t").to_pandas()
    assert len(scores) == len(stats) == 2 * 80 and set(scores["view"]) == {"identity"}
    assert sorted(scores["model_id"].unique()) == [0, 1] and set(stats["stage"]) == {"original"}
    np.testing.assert_allclose(scores["loss"], -scores["phi"])
    states, meta = load_models(out["ckpt"], torch.device("cpu"))
    assert sorted(states) == [0, 1] and meta["task"] == "text" and meta["base"] == str(base_dir)
    s1 = task.score(task.load_model(states[1]))
    np.testing.assert_allclose(scores.loc[scores["model_id"] == 1, "phi"], s1["phi"][0], rtol=1e-5)
    u = {k: str(tmp_path / f"u.{k}") for k in ("scores", "lm_stats", "trajectory")}
    npo = {"epochs": 2, "batch_size": 4, "lr": 1e-3, "beta": 0.1, "retain_weight": 1.0}
    unlearn_shard(originals=out["ckpt"], outputs=u, method="npo", method_name="npo", settings=npo, rate_points=2, **job)
    stats = io.read_table(u["lm_stats"], io.LM_STATS, "t").to_pandas()
    assert set(stats["stage"]) == {"unlearned"} and set(stats["method"]) == {"npo"} and len(stats) == 160
    traj = io.read_table(u["trajectory"], io.TRAJECTORY, "t").to_pandas()
    for model_id in (0, 1):
        t = traj[traj["model_id"] == model_id]
        forget = np.flatnonzero(plan.forget_mask(plan.train_mask(0, model_id, 64), np.arange(10)))
        total = 2 * math.ceil(len(forget) / 4)
        assert sorted(set(t["example_id"])) == forget.tolist() and set(t["view"]) == {"identity"}
        steps = t.groupby("point")["step"].first().tolist()
        assert steps == [0, round(total / 2), total]
