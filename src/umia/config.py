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

import yaml

from umia import io, plugins, registry
from umia import schema as schema_mod
from umia.errors import ConfigError, DataError
from umia.registry import CONTROLS
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


def _scalar(text: str) -> Any:
    """An override value: int, float (1e-3 included, which YAML 1.1 reads as a string), bool or str."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``name@key=value,key=value`` into the method name and its overrides."""
    name, _, rest = spec.partition("@")
    overrides: dict[str, Any] = {}
    if rest:
        for item in rest.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise ConfigError(
                    f"config key 'methods': {spec!r} has a malformed override {item!r}; write name@key=value,key=value"
                )
            overrides[key] = _scalar(value)
    return name, overrides


INHERITED = ("label_smoothing", "flip", "translate")  # unlearning keeps the training recipe's


def method_settings(config: Mapping, spec: str) -> dict[str, Any]:
    """The resolved settings of one entry of ``methods``: the training recipe's label smoothing
    and augmentation, then the method's settings (``unlearn.<name>``; for a plug-in, under its
    function's name), then the entry's overrides. A plug-in's own defaults are not here: its job
    adds them from the plug-in's declaration (umia.methods.resolve)."""
    name, overrides = parse_method(spec)
    settings = {k: config["train"][k] for k in INHERITED}
    settings.update(config["unlearn"].get(plugins.split_ref(name)[1] if plugins.is_plugin(name) else name, {}))
    settings.update(overrides)
    return settings


def _plugin_names(cfg: Mapping) -> set[str]:
    """The function names of the plug-in methods the config's ``methods`` name (their ``unlearn`` keys)."""
    names = [parse_method(s)[0] for s in cfg.get("methods", []) if isinstance(s, str)]
    return {plugins.split_ref(n)[1] for n in names if plugins.is_plugin(n)}


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
        mine = {k: unlearn.pop(k) for k in _plugin_names(cfg) & set(unlearn) if k not in registry.METHODS}
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
    _check_methods(cfg, schema, load_plugins)
    _check_tuning(cfg, schema, load_plugins)
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
    checks = registry.TASK_CODE[task(cfg)].checks  # the task's own checks, named in the registry
    if checks:
        registry.load(checks)(cfg, load_plugins)
    if not text and cfg["train"].get("adapter") is not None:
        raise ConfigError(
            "config key 'train.adapter': adapters are for language models (dataset imdb); an image "
            "network is trained whole, so remove train.adapter"
        )
    return cfg


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


def _method_schema(cfg: Mapping, schema: Mapping, spec: str, load_plugins: bool, key: str):
    """(tasks, settings schema, resolved settings) of one method entry, or None for a plug-in in
    a job (not imported there); a ConfigError naming ``key`` for an unknown or misplaced method."""
    name, overrides = parse_method(spec)
    if name in CONTROLS:
        raise ConfigError(f"config key '{key}': {name!r} is a control and always runs; remove it from the list")
    if plugins.is_plugin(name):
        fn_name = plugins.split_ref(name)[1]
        if fn_name in registry.METHODS or fn_name in CONTROLS:
            raise ConfigError(
                f"config key '{key}': plug-in {name!r} has the name of a built-in method; rename the function"
            )
        if not load_plugins:
            return None
        _, declared = plugins.load_method(name)
        given = cfg["unlearn"].get(fn_name, {})
        schema_mod.cast(given, declared.schema())  # 1e-2 under unlearn.<plug-in> too
        unknown = sorted(set(given) - set(declared.schema()["properties"]))
        if unknown:
            has = ", ".join(sorted(declared.schema()["properties"])) or "no settings"
            raise ConfigError(
                f"config key 'unlearn.{fn_name}': sets {unknown[0]!r}, which {name} does not have; it has {has}"
            )
        return declared.tasks, declared.schema(), {**declared.settings, **given, **overrides}
    if name not in registry.METHODS:
        raise ConfigError(
            f"config key '{key}': unknown method {name!r}; known: {', '.join(registry.METHODS)}; "
            "or name your own as file.py:function"
        )
    settings = {k: v for k, v in method_settings(cfg, spec).items() if k not in INHERITED}
    return registry.METHODS[name].tasks, schema["properties"]["unlearn"]["properties"][name], settings


def _check_spec(cfg: Mapping, schema: Mapping, spec: str, load_plugins: bool, key: str) -> None:
    """One method entry (or tuning setting) names a method for the experiment's task, with
    settings it has, in range."""
    found = _method_schema(cfg, schema, spec, load_plugins, key)
    if found is None:
        return
    tasks, method_schema, settings = found
    name, overrides = parse_method(spec)
    kind = task(cfg)
    if kind not in tasks:
        family = [m for m, s in registry.METHODS.items() if kind in s.tasks]
        what = "language models" if kind == "text" else "images"
        raise ConfigError(
            f"config key '{key}': {name!r} does not apply to {cfg['dataset']['name']}; for {what} use one of "
            f"{', '.join(family)}"
        )
    known = set(method_schema["properties"])
    for k in overrides:
        if k not in known:
            has = ", ".join(sorted(known)) or "no settings"
            raise ConfigError(f"config key '{key}': {spec!r} sets {k!r}, which {name} does not have; it has {has}")
    error = next(iter(schema_mod.Validator(method_schema).iter_errors(settings)), None)
    if error is not None:
        raise ConfigError(
            schema_mod.message(error).replace("config key '", f"config key '{key}': {spec!r} setting '", 1)
        )


def _check_methods(cfg: Mapping, schema: Mapping, load_plugins: bool) -> None:
    """Every method entry is valid (``_check_spec``) and has a name of its own."""
    ids: dict[str, str] = {}
    for spec in cfg["methods"]:
        _check_spec(cfg, schema, spec, load_plugins, "methods")
        mid = plugins.method_id(spec)
        if mid in ids:
            raise ConfigError(f"config key 'methods': {spec!r} and {ids[mid]!r} share the name {mid!r}; rename one")
        ids[mid] = spec


def _check_tuning(cfg: Mapping, schema: Mapping, load_plugins: bool) -> None:
    """Every grid belongs to a plain entry of ``methods``, sets only what its method has, and every
    setting of it is in range; the tuning models pair up."""
    plain = {s for s in cfg["methods"] if "@" not in s}
    for name, grid in cfg["tune"].items():
        key = f"tune.{name}"
        if name not in plain:
            raise ConfigError(
                f"config key '{key}': {name!r} is not an entry of methods (without @); add it to methods or "
                "remove its grid"
            )
        if not grid:
            raise ConfigError(
                f"config key '{key}': the grid is empty; give a setting and its values, e.g. lr: [0.01, 0.1]"
            )
        for setting, values in grid.items():
            if not values:
                raise ConfigError(f"config key '{key}.{setting}': the grid is empty; give at least one value")
        for spec in tuning_grids(cfg)[name]:
            _check_spec(cfg, schema, spec, load_plugins, key)
    n = cfg["tuning"]["n_models"]
    if cfg["tune"] and n % 2:
        raise ConfigError(
            f"config key 'tuning.n_models': {n} is odd; it must be even (membership is balanced over pairs)"
        )
    if cfg["tune"] and cfg["tuning"]["rule"] == "challenge" and n < 8:
        raise ConfigError(
            f"config key 'tuning.n_models': {n} tuning models give the challenge's score {n // 2} per population, "
            "too few for its epsilon buckets; raise it to at least 8"
        )


def _value(v: Any) -> str:
    return repr(v) if isinstance(v, float) else str(v)


def tuning_grids(config: Mapping) -> dict[str, list[str]]:
    """Each tuned method -> its settings as method entries (``name@key=value,...``, keys sorted),
    every combination of its grid, in the grid's order."""
    out = {}
    for name, grid in config.get("tune", {}).items():
        keys = sorted(grid)
        combos = [[]]
        for k in keys:
            combos = [c + [f"{k}={_value(v)}"] for c in combos for v in grid[k]]
        out[name] = [f"{name}@{','.join(c)}" for c in combos]
    return out


def tuned(config: Mapping) -> list[str]:
    """The entries of ``methods`` whose settings the tuning stage picks (plain names with a grid)."""
    return [s for s in config["methods"] if "@" not in s and s in config.get("tune", {})]


def tuning_seed(config: Mapping) -> int:
    """The tuning models' seed: their masks and inits are not the study's models'."""
    from umia.plan import derive_seed

    return derive_seed(config["seed"], "tuning") % (2**31)


def method_ids(config: Mapping) -> dict[str, str]:
    """Each method entry's name in paths and tables (umia.plugins.method_id) -> the entry."""
    return {plugins.method_id(spec): spec for spec in config["methods"]}


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
