"""umia.config: schema defaults, one-line ConfigErrors naming the key, method overrides, hashes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from umia import config as C
from umia import registry
from umia.config import ConfigError, config_hash, method_settings, resolve

CONFIG = Path(__file__).resolve().parents[2] / "config" / "config.yaml"


def _error(cfg: dict, schema: dict) -> str:
    with pytest.raises(ConfigError) as info:
        resolve(cfg, schema)
    msg = str(info.value)
    assert "\n" not in msg, f"ConfigError message is not one line: {msg!r}"
    return msg


def _defaults(schema: dict) -> dict:
    """The default of every property (recursively) that declares one."""
    out = {}
    for name, sub in schema.get("properties", {}).items():
        if "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
            if isinstance(out[name], dict):
                out[name] = {**_defaults(sub), **out[name]}
    return out


def _check_filled(given: dict, resolved: dict, defaults: dict, where: str = "") -> None:
    for key, default in defaults.items():
        assert key in resolved, f"{where}{key} not filled"
        if key not in given:
            assert resolved[key] == default, f"{where}{key}: {resolved[key]!r} != default {default!r}"
        elif isinstance(default, dict):
            _check_filled(given[key], resolved[key], default, f"{where}{key}.")
        else:
            assert resolved[key] == given[key], f"{where}{key}: given value not kept"


@pytest.mark.parametrize("name", ["config.yaml", "cifar10.yaml"])
def test_repo_configs_resolve_with_defaults(schema, name):
    """The repo's configs resolve; every key they give is kept, every key they leave out (at any
    depth) takes the schema's default; the input is not mutated."""
    path = CONFIG.parent / name
    if not path.exists():
        pytest.skip(f"{path} not in this checkout")
    with open(path) as f:
        raw = yaml.safe_load(f)
    before = copy.deepcopy(raw)
    cfg = resolve(raw, schema)
    assert raw == before
    _check_filled(raw, cfg, _defaults(schema))
    assert "momentum" in cfg["train"] and "loss_cv_folds" in cfg["attacks"]


def test_empty_config_takes_every_default(schema):
    """Nested sections whose default is {} get their own properties' defaults filled too."""
    cfg = resolve({}, schema)
    assert cfg == _defaults(schema)
    assert cfg["dataset"]["name"] == "digits" and cfg["dataset"]["path"] is None
    assert set(cfg["unlearn"]) == set(registry.METHODS)
    # every train key but adapter (left out: full fine-tuning, and image hashes as they were)
    assert set(cfg["train"]) == set(schema["properties"]["train"]["properties"]) - {"adapter"}


@pytest.mark.parametrize(
    "change, key",
    [
        ({"dataset": {"name": "imagenet"}}, "dataset.name"),
        ({"methods": ["finetune", "unlearn_magic"]}, "unlearn_magic"),
        ({"network": "vit"}, "network"),
        ({"dataset": {"name": "digits"}, "network": "resnet18"}, "network"),  # not for 8x8
        ({"n_models": 34, "shard_size": 4}, "n_models"),  # even, 34 % 4 != 0
        ({"n_models": 33, "shard_size": 1}, "n_models"),
        ({"n_models": 2, "shard_size": 1}, "n_models"),
        ({"n_models": "thirty-two"}, "n_models"),
        ({"candidates": {"mode": "random", "size": 10**6}}, "candidates.size"),
        (
            {"dataset": {"name": "fashion_mnist", "path": "/nonexistent/umia/fmnist"}},
            "dataset.path",
        ),
        ({"epochs": 3}, "epochs"),
        ({"train": {"lrr": 0.1}}, "lrr"),
        ({"methods": ["none"]}, "none"),
        ({"methods": ["retrain", "finetune"]}, "retrain"),
        ({"methods": ["finetune@lr"]}, "finetune@lr"),
        ({"methods": ["finetune@foo=1"]}, "foo"),
        ({"candidates": {"mode": "class", "class": 10}}, "candidates.class"),
        ({"n_models": 32, "shard_size": 8, "attacks": {"n_folds": 20}}, "attacks.n_folds"),
    ],
    ids=[
        "unknown-dataset",
        "unknown-method",
        "unknown-network",
        "network-for-other-dataset",
        "n_models-not-multiple-of-shard",
        "odd-n_models",
        "n_models-below-minimum",
        "n_models-string",
        "candidates-too-many",
        "path-missing",
        "unknown-top-level-key",
        "unknown-nested-key",
        "control-none-in-methods",
        "control-retrain-in-methods",
        "malformed-override",
        "override-unknown-key",
        "class-out-of-range",
        "too-many-folds",
    ],
)
def test_bad_config_one_line_error_naming_key(raw_config, schema, change, key):
    """Each bad value gives a ConfigError whose single-line message names the offending key."""
    cfg = raw_config
    for k, v in change.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    msg = _error(cfg, schema)
    assert key in msg, msg


def test_odd_n_models_says_even(raw_config, schema):
    raw_config.update(n_models=33, shard_size=1)
    assert "even" in _error(raw_config, schema)


def test_shard_multiple_message_names_shard_size(raw_config, schema):
    raw_config.update(n_models=36, shard_size=8)
    assert "shard_size" in _error(raw_config, schema)


def test_unlearn_shard_size_must_be_a_multiple_of_shard_size(raw_config, schema):
    raw_config.update(n_models=32, shard_size=8, unlearn_shard_size=12)
    assert _error(raw_config, schema) == (
        "config key 'unlearn_shard_size': 12 is not a multiple of shard_size=8; choose a multiple, or null"
    )


@pytest.mark.parametrize(("size", "n", "jobs_of"), [(None, 32, 8), (16, 32, 16), (64, 32, 32), (64, 96, 32)])
def test_unlearn_jobs_hold_the_gcd_of_unlearn_shard_size_and_n(raw_config, schema, size, n, jobs_of):
    raw_config.update(n_models=n, shard_size=8, unlearn_shard_size=size)
    assert C.unlearn_shard_size(resolve(raw_config, schema)) == jobs_of


def test_unlearn_shard_size_is_a_speed_key(raw_config, schema):
    base = config_hash(resolve(raw_config, schema))
    assert config_hash(resolve({**raw_config, "unlearn_shard_size": 32, "jobs_per_gpu": 5}, schema)) == base


def test_removed_stack_key_is_refused_above_one_and_ignored_at_one(raw_config, schema):
    """train.stack (stacked training, removed in 0.3): an old config at 1 still runs, the same
    experiment; one that stacked is told in one line."""
    base = config_hash(resolve(raw_config, schema))
    raw_config["train"] = {**raw_config.get("train", {}), "stack": 1}
    assert config_hash(resolve(raw_config, schema)) == base
    raw_config["train"]["stack"] = 4
    assert _error(raw_config, schema).startswith("config key 'train.stack': stacked training was removed")


def test_candidate_limit_is_half_the_pool(raw_config, schema):
    """Each model trains on half of the pool, so at most n_pool // 2 random candidates."""
    raw_config["dataset"] = {"name": "digits", "test_fraction": 0.25}
    half = C.pool_size(resolve(raw_config, schema)["dataset"]) // 2
    assert half == 673  # 1,347 pool examples
    raw_config["candidates"] = {"mode": "random", "size": half}
    assert resolve(raw_config, schema)["candidates"]["size"] == half
    raw_config["candidates"] = {"mode": "random", "size": half + 1}
    assert "candidates.size" in _error(raw_config, schema)


def test_existing_path_accepted(raw_config, schema, tmp_path):
    raw_config["dataset"] = {"name": "cifar10", "path": str(tmp_path)}
    raw_config["network"] = "resnet18"
    assert resolve(raw_config, schema)["dataset"]["path"] == str(tmp_path)


def test_not_a_mapping(schema):
    with pytest.raises(ConfigError):
        resolve(["n_models", 32], schema)


def test_method_override_resolves(raw_config, schema):
    """finetune@lr=0.1 sets lr to the float 0.1 and keeps finetune's other defaults."""
    raw_config["methods"] = ["finetune", "finetune@lr=0.1", "neggrad_plus@alpha=0.5,epochs=2"]
    raw_config["unlearn"] = {"finetune": {"epochs": 3}}  # lr and batch_size from the schema
    cfg = resolve(raw_config, schema)
    ft = _defaults(schema)["unlearn"]["finetune"]
    ng = _defaults(schema)["unlearn"]["neggrad_plus"]
    assert ft["lr"] != 0.1 and ng["alpha"] != 0.5 and ng["epochs"] != 2  # overrides are visible
    # unlearning inherits the training recipe's label smoothing and augmentation
    inherited = {k: cfg["train"][k] for k in C.INHERITED}
    ft, ng = {**inherited, **ft}, {**inherited, **ng}
    assert method_settings(cfg, "finetune@lr=0.1") == {**ft, "epochs": 3, "lr": 0.1}
    assert method_settings(cfg, "finetune") == {**ft, "epochs": 3}
    assert isinstance(method_settings(cfg, "finetune@lr=0.1")["lr"], float)
    assert method_settings(cfg, "neggrad_plus@alpha=0.5,epochs=2") == {
        **ng,
        "alpha": 0.5,
        "epochs": 2,
    }
    assert C.method_hash(cfg, "finetune@lr=0.1") != C.method_hash(cfg, "finetune")


def test_override_in_exponent_notation_is_a_float(raw_config, schema):
    raw_config["methods"] = ["finetune@lr=1e-3"]
    try:
        cfg = resolve(raw_config, schema)
    except ConfigError:
        return  # refusing it with a ConfigError would be fine too
    assert method_settings(cfg, "finetune@lr=1e-3")["lr"] == pytest.approx(1e-3)


@pytest.mark.parametrize("spec", ["finetune@lr=-1", "neggrad_plus@alpha=2", "finetune@epochs=abc"])
def test_override_out_of_schema_is_refused(raw_config, schema, spec):
    raw_config["methods"] = [spec]
    msg = _error(raw_config, schema)
    assert "methods" in msg


def _hash(raw_config, schema, **change):
    cfg = copy.deepcopy(raw_config)
    for k, v in change.items():
        if isinstance(v, dict):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return config_hash(resolve(cfg, schema))


def test_config_hash_tracks_result_keys_only(raw_config, schema):
    """The hash stamps what defines models and scores: train.lr, seed, views change it; growing
    the experiment (n_models), the method list, its name or the data's location do not."""
    base = _hash(raw_config, schema)
    assert base == _hash(raw_config, schema)
    assert len(base) == 16
    assert _hash(raw_config, schema, train={"lr": 0.1}) != base
    assert _hash(raw_config, schema, seed=1) != base
    assert _hash(raw_config, schema, views=["identity"]) != base
    assert _hash(raw_config, schema, n_models=64) == base
    assert _hash(raw_config, schema, methods=["finetune"]) == base
    assert _hash(raw_config, schema, experiment="other") == base
    assert _hash(raw_config, schema, dataset={"root": "/elsewhere"}) == base
    assert _hash(raw_config, schema, unlearn={"finetune": {"lr": 0.5}}) == base


def test_config_hash_pinned_and_blind_to_speed_keys(raw_config, schema):
    """The default experiment's hash is pinned: a change of it makes every user's finished results
    unreadable, so it must be deliberate (a new key with a default changes it unless kept out).
    train.stack (removed; accepted at 1) changes nothing."""
    assert _hash(raw_config, schema) == "bc78d2e166bccd0c"
    c10 = yaml.safe_load((CONFIG.parent / "cifar10.yaml").read_text())
    base = _hash(c10, schema)
    assert _hash(c10, schema, train={"stack": 1}) == base
    assert _hash(c10, schema, train={"epochs": 12}) != base


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.3, 0.5])
def test_pool_size_digits(fraction):
    """pool = 1797 - ceil(fraction * 1797), sklearn's train_test_split rule (checked against the
    data in test_data.py)."""
    import math

    assert C.pool_size({"name": "digits", "test_fraction": fraction}) == 1797 - math.ceil(fraction * 1797)
    assert C.pool_size({"name": "digits", "test_fraction": 0.25}) == 1347
    assert C.pool_size({"name": "cifar10"}) == 50_000
    assert C.pool_size({"name": "fashion_mnist"}) == 60_000


# --- the text task (dataset.name: imdb) -------------------------------------------------------


def _text(tmp_path, **change) -> dict:
    """A text config over the image default, as Snakemake merges config/imdb.yaml over config/config.yaml."""
    from snakemake.utils import update_config

    with open(CONFIG.parent / "imdb.yaml") as f:
        text = yaml.safe_load(f)
    with open(CONFIG) as f:
        cfg = yaml.safe_load(f)
    update_config(cfg, text)
    (tmp_path / "imdb.parquet").write_bytes(b"")
    cfg["dataset"]["path"] = str(tmp_path / "imdb.parquet")
    update_config(cfg, change)
    return cfg


def test_imdb_config_resolves_over_the_image_default(schema, tmp_path):
    cfg = resolve(_text(tmp_path), schema)
    assert cfg["views"] == ["identity"] and cfg["network"] == "gpt2"
    assert cfg["methods"] == ["finetune", "gradient_ascent", "neggrad_plus", "npo", "per_example_stop"]
    assert cfg["train"]["lr"] == 3e-6 and cfg["unlearn"]["npo"]["beta"] == 0.1
    assert cfg["lm"]["n_layer"] == 6 and cfg["dataset"]["max_tokens"] == 128


def test_text_defaults_fill_what_a_text_config_leaves_out(schema, tmp_path):
    """Without the image default underneath, a text config's views, network, methods, recipe and
    method settings take the text defaults (AdamW learning rates), not the image task's."""
    (tmp_path / "r.parquet").write_bytes(b"")
    cfg = resolve({"dataset": {"name": "imdb", "path": str(tmp_path / "r.parquet")}}, schema)
    assert cfg["views"] == ["identity"] and cfg["network"] == "gpt2"
    assert cfg["methods"] == C.TEXT_DEFAULTS["methods"]
    assert cfg["methods"] == [m for m, spec in registry.METHODS.items() if "text" in spec.tasks]
    assert cfg["train"]["lr"] == C.TEXT_DEFAULTS["train"]["lr"]
    assert cfg["unlearn"]["finetune"] == C.TEXT_DEFAULTS["unlearn"]["finetune"]
    assert cfg["dataset"]["pool_size"] == 2000 and cfg["lm"]["base_model"] is None
    given = resolve({"dataset": {"name": "imdb", "path": str(tmp_path / "r.parquet")}, "train": {"lr": 0.01}}, schema)
    assert given["train"]["lr"] == 0.01 and given["train"]["epochs"] == C.TEXT_DEFAULTS["train"]["epochs"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dataset": {"path": None}}, "config key 'dataset.path': imdb has no download; set it to a local IMDB"),
        (
            {"dataset": {"path": "/no/such.parquet"}},
            "config key 'dataset.path': /no/such.parquet does not exist; fix the path",
        ),
        ({"methods": ["scrub"]}, "'scrub' does not apply to imdb; for language models use one of finetune,"),
        (
            {"views": ["identity", "mirror"]},
            "config key 'views': ['identity', 'mirror'] but a text experiment has one view",
        ),
        ({"network": "mlp"}, "config key 'network': 'mlp' does not fit dataset 'imdb'; use one of gpt2"),
        (
            {"network": "mylab.nets:Big"},
            "config key 'network': plug-in networks are for images; for text set lm.base_model",
        ),
        ({"lm": {"n_head": 5}}, "config key 'lm.n_head': 5 does not divide lm.n_embd=384"),
        ({"lm": {"n_positions": 64}}, "config key 'lm.n_positions': 64 is less than dataset.max_tokens=128"),
        ({"candidates": {"size": 2001}}, "2001 candidates but the pool of imdb has 4000 examples"),
        ({"candidates": {"mode": "class", "class": 2}}, "'candidates.class': 2 is not a class of imdb (0-1)"),
        ({"methods": ["npo@gamma=1"]}, "'npo@gamma=1' sets 'gamma', which npo does not have; it has batch_size, beta"),
    ],
)
def test_text_config_errors(schema, tmp_path, change, message):
    with pytest.raises(ConfigError) as e:
        resolve(_text(tmp_path, **change), schema)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_npo_is_refused_for_images(raw_config, schema):
    raw_config["methods"] = ["npo"]
    with pytest.raises(ConfigError, match="'npo' does not apply to digits; for images use one of finetune"):
        resolve(raw_config, schema)


def test_text_keys_leave_the_image_hash_alone_and_define_the_text_hash(raw_config, schema, tmp_path):
    base = _hash(raw_config, schema)
    assert _hash(raw_config, schema, dataset={"max_tokens": 64, "pool_size": 10}) == base
    assert config_hash(resolve({**raw_config, "lm": {"n_layer": 2}}, schema)) == base
    text = config_hash(resolve(_text(tmp_path), schema))
    assert config_hash(resolve(_text(tmp_path, lm={"n_layer": 2}), schema)) != text
    assert config_hash(resolve(_text(tmp_path, dataset={"max_tokens": 64}), schema)) != text
    assert config_hash(resolve(_text(tmp_path, dataset={"test_fraction": 0.5}), schema)) == text
    assert config_hash(resolve(_text(tmp_path, dataset={"path": str(tmp_path)}), schema)) == text


def test_a_new_corpus_layout_changes_the_text_hash_only(raw_config, schema, tmp_path, monkeypatch):
    """Models of a corpus split the old way (umia.config.TEXT_SPLIT) are never mixed with new ones."""
    image, text = _hash(raw_config, schema), config_hash(resolve(_text(tmp_path), schema))
    monkeypatch.setattr(C, "TEXT_SPLIT", C.TEXT_SPLIT - 1)
    assert config_hash(resolve(_text(tmp_path), schema)) != text
    assert _hash(raw_config, schema) == image


# --- plug-in methods and networks (umia.plugins) ------------------------------------------------

PLUGIN = """
from umia.plugins import method


@method(settings={"lr": 0.1, "steps": 3}, checks={"lr": {"exclusiveMinimum": 0}})
def ascent(ctx, model, forget, retain, s, gen):
    pass


@method(tasks=("text",))
def for_text(ctx, model, forget, retain, s, gen):
    pass


def finetune(ctx, model, forget, retain, s, gen):
    pass


def two(a, b):
    pass


def net(in_shape, n_classes, width):
    import torch

    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_shape[0] * in_shape[1] * in_shape[2], n_classes))


def no_net(in_shape, n_classes, width):
    pass
"""


@pytest.fixture
def plugin(tmp_path) -> str:
    path = tmp_path / "mine.py"
    path.write_text(PLUGIN)
    return str(path)


def test_plugin_method_resolves_with_its_own_settings(raw_config, schema, plugin):
    raw_config["methods"] = ["finetune", f"{plugin}:ascent@lr=0.5"]
    cfg = resolve(raw_config, schema)
    assert C.method_ids(cfg) == {"finetune": "finetune", "ascent@lr=0.5": f"{plugin}:ascent@lr=0.5"}
    # the config's part: the inherited recipe keys and the overrides (the job adds the declared defaults)
    assert method_settings(cfg, f"{plugin}:ascent@lr=0.5") == {**{k: cfg["train"][k] for k in C.INHERITED}, "lr": 0.5}


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{p}:finetune", "has the name of a built-in method; rename the function"),
        ("{d}/missing.py:ascent", "missing.py does not exist; fix the path"),
        ("{p}:nothing", "has no 'nothing'; check the name after the colon"),
        ("{p}:ascent@foo=1", "sets 'foo', which {p}:ascent does not have; it has lr, steps"),
        ("{p}:ascent@lr=-1", "setting 'lr': -1 out of range; it must be > 0"),
        ("{p}:for_text", "does not apply to digits; for images use one of finetune"),
        ("{p}:two", "takes (a, b) but a method takes (ctx, model, forget, retain, s, gen)"),
    ],
    ids=[
        "builtin-name",
        "missing-file",
        "missing-function",
        "unknown-setting",
        "out-of-range",
        "other-task",
        "signature",
    ],
)
def test_plugin_method_errors(raw_config, schema, plugin, entry, message):
    d = str(Path(plugin).parent)
    raw_config["methods"] = [entry.format(p=plugin, d=d)]
    msg = _error(raw_config, schema)
    assert message.format(p=plugin, d=d) in msg and "config key 'methods'" in msg, msg


def test_plugins_are_not_imported_without_load_plugins(raw_config, schema, tmp_path):
    """The workflow's cluster jobs re-parse the Snakefile without importing plug-ins."""
    raw_config["methods"] = [f"{tmp_path}/absent.py:ascent"]
    assert resolve(raw_config, schema, load_plugins=False)["methods"] == raw_config["methods"]
    assert "absent.py does not exist" in _error(raw_config, schema)
    raw_config["methods"] = [f"{tmp_path}/absent.py:finetune"]  # a built-in's name needs no import to refuse
    with pytest.raises(ConfigError, match="has the name of a built-in method"):
        resolve(raw_config, schema, load_plugins=False)


def test_plugin_network(raw_config, schema, plugin, tmp_path):
    raw_config["network"] = f"{plugin}:net"
    assert resolve(raw_config, schema)["network"] == f"{plugin}:net"
    raw_config["network"] = f"{tmp_path}/absent.py:net"
    assert "config key 'network'" in _error(raw_config, schema)
    raw_config["network"] = f"{plugin}:no_net"  # tried on the CPU before any job
    assert "returned a NoneType, not a torch.nn.Module" in _error(raw_config, schema)
    assert resolve(raw_config, schema, load_plugins=False)["network"] == raw_config["network"]


def test_numbers_in_any_yaml_spelling_are_the_numbers(raw_config, schema):
    """YAML 1.1 reads 1e-2 as a string and --config gives nested values as strings: both are cast
    to the schema's type before validation, so they are the same experiment as plain numbers."""
    written = yaml.safe_load("unlearn: {finetune: {lr: 1e-2}}\ntrain: {epochs: '20'}")
    assert written["unlearn"]["finetune"]["lr"] == "1e-2"  # what YAML 1.1 gives
    as_text = resolve({**raw_config, **written}, schema)
    assert as_text["unlearn"]["finetune"]["lr"] == 0.01 and as_text["train"]["epochs"] == 20
    assert isinstance(as_text["train"]["epochs"], int)  # "20" is 20, not 20.0: the same hash
    plain = resolve({**raw_config, "unlearn": {"finetune": {"lr": 0.01}}, "train": {"epochs": 20}}, schema)
    assert config_hash(as_text) == config_hash(plain)
    assert method_settings(as_text, "finetune") == method_settings(plain, "finetune")


@pytest.mark.parametrize(
    ("change", "line"),
    [
        ({"n_model": 16}, "config: unknown key 'n_model'; did you mean 'n_models'? (config/config.yaml has them all)"),
        ({"train": {"epoch": 3}}, "config: unknown key 'train.epoch'; did you mean 'train.epochs'?"),
        ({"train": {"lr": "fast"}}, "config key 'train.lr': 'fast' is not a number; write one, as in 0.01, 1e-4 or 16"),
        ({"n_models": "many"}, "config key 'n_models': 'many' is not a whole number; write one, as in 16"),
        ({"attacks": {"zzz": 1}}, "config: unknown key 'attacks.zzz'; known keys here: n_folds,"),
    ],
)
def test_a_misspelled_key_or_a_word_for_a_number_is_one_line_naming_the_fix(raw_config, schema, change, line):
    assert _error({**raw_config, **change}, schema).startswith(line)


def test_a_text_config_gets_the_text_recipe_whatever_file_is_loaded_first(schema, tmp_path):
    """The workflow loads config/config.yaml (the image study) before the user's files: a text
    config that leaves the recipe out still gets the text recipe, and the user's keys win."""
    (tmp_path / "r.parquet").write_bytes(b"")
    image_default = yaml.safe_load(CONFIG.read_text())
    given = {"dataset": {"name": "imdb", "path": str(tmp_path / "r.parquet")}, "unlearn": {"npo": {"lr": "1e-5"}}}
    merged = copy.deepcopy(image_default)  # what Snakemake hands the Snakefile: the file, the user's on top
    for key, value in given.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    assert merged["train"]["lr"] == image_default["train"]["lr"]  # the trap: an SGD rate for a language model
    cfg = resolve(C.with_task_defaults(merged, given), schema)
    assert cfg["train"]["lr"] == C.TEXT_DEFAULTS["train"]["lr"] and cfg["train"]["epochs"] == 3
    assert cfg["unlearn"]["finetune"] == C.TEXT_DEFAULTS["unlearn"]["finetune"]
    assert cfg["views"] == ["identity"] and cfg["methods"] == C.TEXT_DEFAULTS["methods"]
    assert cfg["unlearn"]["npo"]["lr"] == 1e-5  # the user's key wins
    assert cfg["experiment"] == image_default["experiment"]  # task-free keys still come from the file
    image = {**copy.deepcopy(image_default), "n_models": 8}
    assert C.with_task_defaults(image, {"n_models": 8}) == image  # an image study is the merged config


def test_a_plugin_methods_settings_can_be_written_under_unlearn(raw_config, schema):
    """As a built-in's: unlearn.<its function's name>, cast and checked against its declaration,
    and the entry's @overrides on top."""
    ssd = str(Path(__file__).resolve().parents[2] / "examples/ssd.py") + ":ssd"
    cfg = resolve(
        {**raw_config, "methods": [ssd, f"{ssd}@lam=2"], "unlearn": {"ssd": {"alpha": "5", "lam": 3}}}, schema
    )
    assert method_settings(cfg, ssd)["alpha"] == 5 and method_settings(cfg, ssd)["lam"] == 3
    assert method_settings(cfg, f"{ssd}@lam=2")["lam"] == 2
    assert method_settings(cfg, "finetune") == method_settings(resolve(raw_config, schema), "finetune")
    bad = {**raw_config, "methods": [ssd], "unlearn": {"ssd": {"beta": 1}}}
    assert _error(bad, schema).startswith("config key 'unlearn.ssd': sets 'beta', which")


def test_the_configuration_page_is_the_schema(schema):
    """docs/configuration.md's table is the schema's keys, descriptions and defaults, row for row
    (python -m umia.schema rewrites it after a schema change)."""
    from umia.schema import BEGIN, END, reference

    page = (CONFIG.parents[1] / "docs/configuration.md").read_text()
    assert page.split(BEGIN, 1)[1].split(END, 1)[0] == reference(schema), "run: python -m umia.schema"
    keys = [line.split("`")[1] for line in reference(schema).splitlines()[2:]]
    assert {"train.epochs", "unlearn.npo", "tuning.rule", "lm.base_model", "overwrite", "labels"} <= set(keys)
    assert len(keys) == len(set(keys))
