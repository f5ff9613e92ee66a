"""Text corpora for the language-model task: reviews, cleaning, deduplication, the pool / test /
pretraining split, a byte-level BPE tokenizer and the encoding of texts as padded token ids.

A review corpus is a DataFrame with columns doc_id (int64), split ("train" | "test"), label
(int64; IMDB: 0 negative, 1 positive) and text (str). The training split gives the membership
pool P and, disjoint from it, the held-out test examples (never trained on by any model); the test
split is the corpus on which the base model is pretrained. ``torch`` and ``transformers`` are imported inside
the functions that need them: importing them costs seconds, and a data job needs neither.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from umia.errors import DataError
from umia.io import atomic_dir, atomic_path
from umia.registry import DATASETS

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

COLUMNS = ("doc_id", "split", "label", "text")
LABELS = {"neg": 0, "pos": 1}  # aclImdb folder names -> labels, as in the IMDB Parquet
BOS = EOS = "<|endoftext|>"  # GPT-2's convention: one token opens and closes a document
PAD = "<|pad|>"  # never scored: the mask excludes it, so its value does not matter


# ---------------------------------------------------------------------------------------- corpus
def load_reviews(path: str | Path) -> pd.DataFrame:
    """Read a review corpus from a Parquet file (columns doc_id, split, label, text) or from a
    folder of the original aclImdb layout (``{train,test}/{neg,pos}/<id>_<rating>.txt``).

    Folder doc_ids run over train/neg, train/pos, test/neg, test/pos, each by file id, as in
    ``../shared/data/imdb.parquet``. Returns the frame with columns ``COLUMNS``, sorted by doc_id.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; point dataset.path at the IMDB Parquet or aclImdb folder")
    df = _acl_imdb(path) if path.is_dir() else _parquet(path)
    bad = sorted(set(df["split"]) - {"train", "test"})
    if bad:
        raise DataError(f"{path}: split must be train or test, found {bad}")
    if df["doc_id"].duplicated().any():
        raise DataError(f"{path}: doc_id is not unique")
    df = df.astype({"doc_id": "int64", "label": "int64", "split": "str", "text": "str"})
    return df.sort_values("doc_id", kind="stable").reset_index(drop=True)


def _parquet(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow.ArrowInvalid, OSError: a bad file
        raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from e
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path}: lacks columns {missing}; a review corpus has {list(COLUMNS)}")
    return df[list(COLUMNS)]


def _acl_imdb(folder: Path) -> pd.DataFrame:
    rows = []
    for split in ("train", "test"):
        for name, label in LABELS.items():
            sub = folder / split / name
            if not sub.is_dir():
                raise DataError(
                    f"{folder}: has no {split}/{name}/; expected the aclImdb layout {{train,test}}/{{neg,pos}}/"
                )
            files = sorted(sub.glob("*.txt"), key=_file_id)
            rows += [(split, label, f.read_text(encoding="utf-8")) for f in files]
    split, label, text = zip(*rows, strict=True) if rows else ((), (), ())
    return pd.DataFrame({"doc_id": np.arange(len(rows)), "split": split, "label": label, "text": text})


def _file_id(f: Path) -> tuple[int, str]:
    head = f.stem.split("_")[0]
    return (int(head), f.name) if head.isdigit() else (-1, f.name)


_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)


def clean(text: str) -> str:
    """Replace HTML line breaks (``<br />``, ``<br/>``, ``<br>``) by newlines, then collapse runs of
    whitespace: a run holding a newline becomes one newline, any other run one space; strip ends."""
    lines = (" ".join(line.split()) for line in _BREAK.sub("\n", text).split("\n"))
    return "\n".join(line for line in lines if line)


def deduplicate(df: pd.DataFrame) -> pd.DataFrame:
    """Drop reviews whose cleaned text equals that of a review with a smaller doc_id, over the
    whole corpus (both splits): identical texts among members and non-members would fake a leak.
    The text column is returned as it came; call this before any split."""
    df = df.sort_values("doc_id", kind="stable")
    dup = df["text"].map(clean).duplicated(keep="first")
    cross = df.loc[dup, "split"].value_counts().to_dict()
    log.info("deduplicate: dropped %d of %d reviews as exact duplicates (by split: %s)", int(dup.sum()), len(df), cross)
    return df.loc[~dup].reset_index(drop=True)


@dataclass(frozen=True)
class Corpus:
    """The three disjoint parts of a prepared text corpus, each with columns ``COLUMNS``, cleaned.

    pool: the membership pool P (a draw from the train split, or all of it but the test reviews);
    test: never trained on by any model (a draw from the rest of the train split); pretrain: the
    base model's pretraining corpus (the test split).
    """

    pool: pd.DataFrame
    test: pd.DataFrame
    pretrain: pd.DataFrame


def split_corpus(
    df: pd.DataFrame,
    *,
    pool_size: int | None = None,
    test_size: int = 0,
    pretrain_size: int | None = None,
    seed: int = 0,
) -> Corpus:
    """Clean and deduplicate a review corpus, then split it (``umia.config.TEXT_SPLIT`` 2): the
    pool P and the held-out test examples are disjoint seeded draws from the train split
    (``pool_size`` None: all but the test examples), the pretraining corpus a seeded draw from the
    test split (``pretrain_size`` None: all of it).

    Members and held-out reviews come from one split so that they are alike: IMDB's two splits
    are reviews of disjoint movies, and a base pretrained on the test split finds its movies
    easier, so held-out test-split reviews would be told from pool reviews by their loss alone
    (a population attack beat chance on the retrain control, 0.547, before this).
    Empty reviews (after cleaning) are dropped. Each part keeps doc_id order.
    """
    df = df.assign(text=df["text"].map(clean))
    df = deduplicate(df[df["text"].str.len() > 0])
    rng = np.random.default_rng(seed)
    train, rest = df[df["split"] == "train"], df[df["split"] == "test"]
    n_pool = len(train) - test_size if pool_size is None else pool_size
    if n_pool + test_size > len(train) or n_pool < 1:
        raise DataError(
            f"pool_size + test_size = {n_pool} + {test_size} but only {len(train)} train-split reviews are left "
            "after deduplication (the pool needs one at least); lower dataset.pool_size or dataset.test_size"
        )
    order = rng.permutation(len(train))
    pool = train.iloc[np.sort(order[:n_pool])]
    test = train.iloc[np.sort(order[n_pool : n_pool + test_size])]
    pretrain = _sample(rest, pretrain_size, rng, "pretrain_size")
    log.info(
        "corpus: pool %d, test %d (both from the train split), pretrain %d reviews", len(pool), len(test), len(pretrain)
    )
    return Corpus(*(p.reset_index(drop=True) for p in (pool, test, pretrain)))


def _sample(df: pd.DataFrame, size: int | None, rng: np.random.Generator, key: str) -> pd.DataFrame:
    if size is None:
        return df
    if size > len(df):
        raise DataError(
            f"{key} = {size} but only {len(df)} test-split reviews are left after deduplication; lower dataset.{key}"
        )
    return df.iloc[np.sort(rng.choice(len(df), size, replace=False))]


def write_corpus(corpus: Corpus, out: str) -> None:
    """One Parquet file (atomically): columns ``role`` (pool | test | pretrain), ``example_id``
    (0..n_pool-1 over the pool, then n_pool.. over the test examples, -1 for pretraining texts:
    the example ids of the scores table) and ``COLUMNS``."""
    parts = []
    start = 0
    for role in ("pool", "test", "pretrain"):
        p = getattr(corpus, role)
        ids = np.full(len(p), -1) if role == "pretrain" else np.arange(start, start + len(p))
        start += 0 if role == "pretrain" else len(p)
        parts.append(p.assign(role=role, example_id=ids.astype(np.int64)))
    frame = pd.concat(parts, ignore_index=True)[["role", "example_id", *COLUMNS]]
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False)


def read_corpus(path: str) -> Corpus:
    """Read back what ``write_corpus`` wrote."""
    df = pd.read_parquet(path)
    parts = (df.loc[df["role"] == r, list(COLUMNS)].reset_index(drop=True) for r in ("pool", "test", "pretrain"))
    return Corpus(*parts)


def prepare_text(
    source: str,
    out: str,
    *,
    pool_size: int | None = None,
    test_size: int = 0,
    pretrain_size: int | None = None,
    seed: int = 0,
) -> Corpus:
    """The prepare job: load, clean, deduplicate, split and write a review corpus."""
    corpus = split_corpus(
        load_reviews(source), pool_size=pool_size, test_size=test_size, pretrain_size=pretrain_size, seed=seed
    )
    write_corpus(corpus, out)
    return corpus


# ------------------------------------------------------------------------------------- tokenizer
def train_tokenizer(
    texts: Sequence[str], vocab_size: int, out_dir: str | Path | None = None
) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE tokenizer (GPT-2's scheme: every byte is a symbol, so any text
    encodes, and decoding gives back the exact text) with ``vocab_size`` entries in all, counting
    the 256 bytes and the special tokens ``<|endoftext|>`` (bos and eos) and ``<|pad|>``.

    Returned as a ``transformers.PreTrainedTokenizerFast``; saved with ``save_pretrained`` to
    ``out_dir`` (atomically) when given, to be loaded back with ``AutoTokenizer.from_pretrained``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + 2:
        raise ValueError(f"vocab_size {vocab_size} must exceed the 256 bytes and 2 special tokens")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    if out_dir is not None:
        with atomic_dir(out_dir) as tmp:
            wrapped.save_pretrained(tmp)
    return wrapped


def _bos_pad(tokenizer: PreTrainedTokenizerBase) -> tuple[int | None, int]:
    """The id that opens a document (bos, else eos, as GPT-2 does) and the padding id."""
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (bos or 0)
    return bos, pad


def encode(
    texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, max_tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of each text, bos first, cut at ``max_tokens`` tokens (bos included), right-padded
    to the longest sequence. A hub tokenizer without bos opens with eos; without either, nothing.

    Returns ids: (n, T) int64 and mask: (n, T) bool (True on real tokens, a prefix of each row),
    with T = the longest encoded length, at most ``max_tokens``.
    """
    import torch

    bos, pad = _bos_pad(tokenizer)
    head = [] if bos is None else [bos]
    body = tokenizer(list(texts), add_special_tokens=False)["input_ids"] if len(texts) else []
    rows = [(head + b)[:max_tokens] for b in body]
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad, dtype=torch.int64)
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.int64)
    mask = torch.arange(width)[None, :] < lengths[:, None]  # (n, T)
    if rows:
        ids[mask] = torch.tensor([t for r in rows for t in r], dtype=torch.int64)
    return ids, mask


def decode(ids: torch.Tensor, mask: torch.Tensor, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The text each row of ``encode``'s output stands for (after the cut), special tokens
    dropped: what the model actually sees, e.g. for the zlib ratio of a truncated review."""
    rows = zip(ids.cpu(), mask.cpu(), strict=True)
    return [
        tokenizer.decode(row[m].tolist(), skip_special_tokens=True, clean_up_tokenization_spaces=False)
        for row, m in rows
    ]


def zlib_lengths(texts: Sequence[str | bytes]) -> np.ndarray:
    """Length in bytes of each text's UTF-8 encoding compressed by zlib (default level):
    Carlini et al. (2021)'s zlib entropy. Returns (n,) int64."""
    return np.array(
        [len(zlib.compress(t if isinstance(t, bytes) else t.encode("utf-8"))) for t in texts], dtype=np.int64
    )


def prepare(dataset: Mapping, seed: int, out: str) -> Corpus:
    """The prepare job of a text experiment: the corpus (pool, test, pretraining reviews) from
    ``dataset.path``, checked against ``dataset.sha256`` when given."""
    from umia.io import check_sha256

    path = Path(dataset["path"])
    if dataset.get("sha256"):
        check_sha256(path, dataset["sha256"])
    return prepare_text(
        str(path),
        out,
        pool_size=dataset["pool_size"],
        test_size=dataset["test_size"],
        pretrain_size=dataset["pretrain_size"],
        seed=seed,
    )


def pool_labels(path: str) -> np.ndarray:
    """Class labels (sentiment) of the pool P, (n_pool,) int64, from the corpus Parquet."""
    return read_corpus(path).pool["label"].to_numpy(np.int64)


def examples(path: str, ids: np.ndarray, dataset: str) -> pd.DataFrame:
    """The pool reviews ``ids`` as io.EXAMPLES rows: label, class name and text (no pixels: height,
    width and channels 0)."""
    pool = read_corpus(path).pool
    y = pool["label"].to_numpy(np.int64)[ids]
    names = DATASETS[dataset].class_names
    return pd.DataFrame(
        {
            "example_id": ids,
            "label": y,
            "label_name": [names[k] for k in y],
            "height": 0,
            "width": 0,
            "channels": 0,
            "pixels": [b""] * len(ids),
            "text": pool["text"].to_numpy()[ids],
        }
    )
