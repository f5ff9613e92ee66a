"""Configuration: schema validation with defaults, and the checks a schema cannot express.

Kept free of heavy imports (no torch): the Snakefile imports it, and every SLURM job re-parses
the Snakefile.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from umia import io, plugins, registry
from umia import schema as schema_mod
from umia.entries import (  # noqa: F401  (the workflow reads them from here)
    INHERITED,
    check_methods,
    check_tuning,
    method_ids,
    method_settings,
    parse_method,
    plugin_names,
    scalar,
    tuned,
    tuning_grids,
)
from umia.errors import ConfigError, DataError
from umia.schema import load_schema  # noqa: F401  (the workflow and users read the schema from here)

# Names of datasets, networks and methods come from umia.registry; plug-ins from umia.plugins.
DIGITS_SIZE = registry.DIGITS_SIZE
TEXT_ONLY_DATASET_KEYS = ("pool_size", "test_size", "pretrain_size", "max_tokens")
# Defaults of a text experiment where they differ from the schema's (which are the image task's):
# filled in before the schema's defaults, only where the config leaves a key out.
TEXT_DEFAULTS: dict[str, Any] = {
    "views": ["identity"],
    "network": "gpt2",
    "methods": ["finetune", "gradient_ascent", "neggrad_plus", "per_example_stop", "npo"],
    "train": {"epochs": 3, "batch_size": 16, "lr": 5e-4, "weight_decay": 0.0, "warmup": 0.1},
    "unlearn": {
        "finetune": {"epochs": 1, "lr": 1e-4, "batch_size": 16},
        "gradient_ascent": {"epochs": 1, "lr": 2e-5, "batch_size": 16},
        "neggrad_plus": {"epochs": 1, "lr": 5e-5, "batch_size": 16, "alpha": 0.8},
        "npo": {"epochs": 2, "lr": 5e-5, "batch_size": 16, "beta": 0.1, "retain_weight": 1.0},
        "per_example_stop": {"epochs": 1, "lr": 5e-5, "batch_size": 16, "alpha": 0.8, "check_every": 1},
    },
}
# Keys that change what a model or a score is. Their hash is stamped into every table, so a
# table from another experiment is refused rather than mixed. n_models, methods and the rest can
# change without invalidating finished work (that is how an experiment grows).
RESULT_KEYS = ("seed", "dataset", "candidates", "views", "network", "train", "shard_size")
# A text experiment's results also depend on its base model (the lm section).
TEXT_RESULT_KEYS = ("lm",)
# How umia.tasks.text.corpus.split_corpus lays a review corpus out; raised when that changes, so a corpus and
# models prepared the old way are prepared again, never mixed with new ones under one hash.
# 2: the held-out reviews come from the train split beside the pool (1: from the test split).
TEXT_SPLIT = 2


def task(config: Mapping) -> str:
    """The experiment's task ("image" or "text"), from its dataset's registry entry."""
    spec = registry.DATASETS.get(config.get("dataset", {}).get("name"))
    return spec.task if spec is not None else "image"


def is_text(config: Mapping) -> bool:
    """Whether the experiment is a text task (a causal language model per shadow model)."""
    return task(config) == "text"


def dataset_info(dataset: Mapping):
    """The dataset's image shape, classes and pool size (the image task's ``inspect``: reads headers
    only); a problem with the file is a ConfigError naming ``dataset.path``."""
    try:  # once per file version and process: the Snakefile asks several times
        path = dataset.get("path")
        stamp = data_fingerprint(dataset) if path else ""
        return _info(dataset["name"], path, dataset.get("test_fraction", 0.25), stamp)
    except DataError as e:
        raise ConfigError(f"config key 'dataset.path': {e}") from e


@functools.lru_cache(maxsize=8)
def _info(name: str, path: str | None, test_fraction: float, stamp: str):
    data = registry.load(registry.TASK_CODE["image"].data)  # the task's data side, named in the registry
    return data.inspect({"name": name, "path": path, "test_fraction": test_fraction})


def data_fingerprint(dataset: Mapping) -> str:
    """umia.io.fingerprint of the dataset's local file or folder ("" where it has none)."""
    path = dataset.get("path")
    return io.fingerprint(path) if path and Path(path).exists() else ""


def n_classes(dataset: Mapping) -> int:
    spec = registry.DATASETS[dataset["name"]]
    return spec.n_classes if spec.n_classes is not None else dataset_info(dataset).n_classes


def with_task_defaults(merged: Mapping, given: Mapping) -> dict:
    """The config a run means: what the user ``given`` (their config files and ``--config``), then
    the defaults of the experiment's task, then the rest of ``merged`` (the workflow's default file
    config/config.yaml, the image study, with the user's on top). So a text config that leaves the
    recipe out gets the text recipe (TEXT_DEFAULTS), not config/config.yaml's image one, whatever
    file was loaded first; an image config is ``merged`` itself."""
    if task(merged) != "text":
        return copy.deepcopy(dict(merged))
    out = copy.deepcopy(dict(given))
    schema_mod.fill(out, TEXT_DEFAULTS)
    schema_mod.fill(out, merged)
    return out


def resolve(config: Mapping, schema: Mapping, load_plugins: bool = True) -> dict:
    """Validate ``config`` against ``schema``, fill defaults, and check what a schema cannot.

    With ``load_plugins`` the plug-ins the config names are imported and checked against their
    contract (the workflow's main process does this; its cluster jobs skip it). Returns a new
    dict; raises ConfigError with a one-line message naming the key.
    """
    if not isinstance(config, Mapping):
        raise ConfigError("config: the file must hold a YAML mapping of keys to values")
    cfg = copy.deepcopy(dict(config))
    train = cfg.get("train")
    if isinstance(train, dict) and "stack" in train:  # removed in 0.3: accepted at 1, refused above
        if train.pop("stack") != 1:
            raise ConfigError(
                "config key 'train.stack': stacked training was removed (measured slower than one model at a "
                "time on an H100 and an H200); delete the key"
            )
    text = isinstance(cfg.get("dataset"), Mapping) and is_text(cfg)
    if text:
        schema_mod.fill(cfg, TEXT_DEFAULTS)
    schema_mod.cast(cfg, schema)  # numbers in any YAML spelling (1e-4), and --config's strings
    unlearn = cfg.get("unlearn")
    mine = {}  # plug-in methods' settings: checked against their own declaration (_check_spec)
    if isinstance(unlearn, dict):
        mine = {k: unlearn.pop(k) for k in plugin_names(cfg) & set(unlearn) if k not in registry.METHODS}
    errors = sorted(schema_mod.Validator(schema).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(schema_mod.message(errors[0]))
    for k, v in mine.items():
        if not isinstance(v, dict):
            raise ConfigError(
                f"config key 'unlearn.{k}': {v!r} is not a mapping of settings; write {k}: {{key: value}}"
            )
        cfg["unlearn"][k] = v

    n, k = cfg["n_models"], cfg["shard_size"]
    if n % 2:
        raise ConfigError(f"config key 'n_models': {n} is odd; it must be even (membership is balanced over pairs)")
    if n % k:
        raise ConfigError(
            f"config key 'n_models': {n} is not a multiple of shard_size={k}; choose n_models = m * shard_size"
        )
    u = cfg["unlearn_shard_size"]
    if u is not None and u % k:
        raise ConfigError(
            f"config key 'unlearn_shard_size': {u} is not a multiple of shard_size={k}; choose a multiple, or null"
        )
    ds = cfg["dataset"]
    if text and ds["path"] is None:
        raise ConfigError(
            f"config key 'dataset.path': {ds['name']} has no download; set it to a local IMDB Parquet "
            "(columns doc_id, split, label, text) or an aclImdb folder"
        )
    if registry.DATASETS[ds["name"]].needs_path and ds["path"] is None and not text:
        raise ConfigError(
            f"config key 'dataset.path': dataset {ds['name']!r} is read from a local file; set dataset.path"
        )
    if ds["path"] is not None and not Path(ds["path"]).exists():
        fix = (
            "fix the path"
            if text or registry.DATASETS[ds["name"]].needs_path
            else "fix the path or set it to null to download"
        )
        raise ConfigError(f"config key 'dataset.path': {ds['path']} does not exist; {fix}")
    _check_network(cfg, load_plugins)
    if ds.get("sha256") and ds["path"] is None:
        raise ConfigError("config key 'dataset.sha256': a checksum needs a local file in dataset.path")
    _check_writable(cfg["results_dir"])
    if ds["name"] == "digits" and ds["path"] is not None:
        raise ConfigError("config key 'dataset.path': digits ships with scikit-learn; set it to null")
    check_methods(cfg, schema, load_plugins)
    check_tuning(cfg, schema, load_plugins)
    c, n_pool = cfg["candidates"], pool_size(ds)
    if c["mode"] == "random" and c["size"] > n_pool // 2:
        raise ConfigError(
            f"config key 'candidates.size': {c['size']} candidates but the pool of {ds['name']} has "
            f"{n_pool} examples and each model trains on half; lower it to at most {n_pool // 2}"
        )
    if c["mode"] == "class" and c["class"] >= n_classes(ds):
        raise ConfigError(
            f"config key 'candidates.class': {c['class']} is not a class of {ds['name']} (0-{n_classes(ds) - 1})"
        )
    if cfg["attacks"]["n_folds"] > n // 2:
        raise ConfigError(
            f"config key 'attacks.n_folds': {cfg['attacks']['n_folds']} folds need n_models >= "
            f"{2 * cfg['attacks']['n_folds']}; lower n_folds or raise n_models"
        )
    _check_efficiency(cfg)
    checks = registry.TASK_CODE[task(cfg)].checks  # the task's own checks, named in the registry
    if checks:
        registry.load(checks)(cfg, load_plugins)
    if not text and cfg["train"].get("adapter") is not None:
        raise ConfigError(
            "config key 'train.adapter': adapters are for language models (dataset imdb); an image "
            "network is trained whole, so remove train.adapter"
        )
    return cfg


def shadow_pool(n_models: int, n_folds: int) -> int:
    """The most shadow models every fold's attacker can be fit on: the models outside the largest
    fold (folds hold whole pairs, umia.attacks.fold_of)."""
    return n_models - 2 * math.ceil(n_models / 2 / n_folds)


def _check_efficiency(cfg: Mapping) -> None:
    pool = shadow_pool(cfg["n_models"], cfg["attacks"]["n_folds"])
    for k in cfg["efficiency"]["sizes"] or []:
        if k % 2 or k < 2:
            raise ConfigError(
                f"config key 'efficiency.sizes': {k} is not an even number of at least 2 (models come in pairs)"
            )
        if k > pool:
            raise ConfigError(
                f"config key 'efficiency.sizes': {k} is more than the {pool} shadow models a fold has (n_models="
                f"{cfg['n_models']}, attacks.n_folds={cfg['attacks']['n_folds']}); lower it or raise n_models"
            )


def _check_writable(results_dir: str) -> None:
    """The results folder, or the nearest folder above it that exists, must be a writable folder."""
    p = Path(results_dir).absolute()
    while not p.exists():
        p = p.parent
    if not p.is_dir() or not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(
            f"config key 'results_dir': {results_dir} cannot be written ({p} is not a writable folder); "
            "choose a folder you can write to"
        )


def pool_size(dataset: Mapping) -> int:
    """Size of the pool P (the training split) of a dataset, known without loading it."""
    if dataset["name"] == "digits":
        return DIGITS_SIZE - math.ceil(dataset["test_fraction"] * DIGITS_SIZE)
    if is_text({"dataset": dataset}):
        return dataset["pool_size"]
    spec = registry.DATASETS[dataset["name"]]
    return spec.pool_size if spec.pool_size is not None else dataset_info(dataset).pool_size


def image_shape(dataset: Mapping) -> tuple[int, int, int]:
    """(C, H, W) of an image dataset, known without loading it."""
    spec = registry.DATASETS[dataset["name"]]
    return spec.shape if spec.shape is not None else tuple(dataset_info(dataset).shape)


def _check_network(cfg: Mapping, load_plugins: bool) -> None:
    """The network fits the dataset's task and image size; a plug-in network imports and is callable."""
    net, ds = cfg["network"], cfg["dataset"]
    kind = task(cfg)
    fits = [n for n, spec in registry.NETWORKS.items() if spec.task == kind]
    if kind == "image":
        side = min(image_shape(ds)[1:])
        fits = [n for n in fits if registry.NETWORKS[n].min_side <= side]
    if plugins.is_plugin(net):
        if kind != "image":
            raise ConfigError("config key 'network': plug-in networks are for images; for text set lm.base_model")
        if load_plugins:  # build it once on the CPU: a wrong signature or output shape stops here
            width = cfg["train"]["width"]
            plugins.check_network(plugins.load(net, "network"), net, image_shape(ds), n_classes(ds), width)
        return
    if net not in registry.NETWORKS:
        raise ConfigError(
            f"config key 'network': {net!r} is not one of: {', '.join(registry.NETWORKS)}; "
            "or name your own as module:function"
        )
    if net not in fits:
        raise ConfigError(
            f"config key 'network': {net!r} does not fit dataset {ds['name']!r}; use one of {', '.join(fits)}"
        )


def tuning_seed(config: Mapping) -> int:
    """The tuning models' seed: their masks and inits are not the study's models'."""
    from umia.plan import derive_seed

    return derive_seed(config["seed"], "tuning") % (2**31)


def unlearn_shard_size(config: Mapping) -> int:
    """Models per unlearning job: ``unlearn_shard_size`` (or shard_size), at most n_models (their
    greatest common divisor, a multiple of shard_size)."""
    return math.gcd(config["n_models"], config["unlearn_shard_size"] or config["shard_size"])


def result_part(config: Mapping) -> dict:
    """The part of a resolved config that defines what models and scores are (RESULT_KEYS; for
    text also the base model and the corpus layout), as ``config_hash`` hashes it."""
    part = copy.deepcopy({k: config[k] for k in RESULT_KEYS})
    where = ("root", "path", "download")  # where the data come from, not what they are
    if is_text(config):
        part.update({k: config[k] for k in TEXT_RESULT_KEYS})
        part["text_split"] = TEXT_SPLIT
        where += ("test_fraction",)
    else:  # text-only keys (their defaults fill every config) leave an image experiment's hash as it was
        where += TEXT_ONLY_DATASET_KEYS
    part["dataset"] = {k: v for k, v in part["dataset"].items() if k not in where}
    if registry.DATASETS[config["dataset"]["name"]].needs_path and not is_text(config):
        part["dataset"]["data"] = data_fingerprint(config["dataset"])  # the file is the data
    return part


def config_hash(config: Mapping) -> str:
    """A short hash of the keys that define what models and scores are (``result_part``)."""
    blob = json.dumps(result_part(config), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def changed_keys(old: Mapping, new: Mapping, where: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) of every leaf where ``old`` and ``new`` differ (a key only
    one of them has: None on the other side), in key order."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += changed_keys(a, b, f"{where}{key}.")
        elif a != b:
            out.append((f"{where}{key}", a, b))
    return out


def method_hash(config: Mapping, spec: str) -> str:
    """Hash of the experiment plus one method's resolved settings."""
    blob = json.dumps([config_hash(config), spec, method_settings(config, spec)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
