"""Method entries as a config writes them (``name@key=value,...``, plug-ins as
``file.py:function``): parsing them, their resolved settings, the tuning grids' settings, and
checking each entry against its method's schema (a built-in's under ``unlearn`` in the config
schema, a plug-in's from its declaration). No torch: the Snakefile reads these."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from umia import plugins, registry
from umia import schema as schema_mod
from umia.errors import ConfigError
from umia.registry import CONTROLS


def _task(cfg: Mapping) -> str:
    spec = registry.DATASETS.get(cfg.get("dataset", {}).get("name"))
    return spec.task if spec is not None else "image"


def scalar(text: str) -> Any:
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
            overrides[key] = scalar(value)
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


def plugin_names(cfg: Mapping) -> set[str]:
    """The function names of the plug-in methods the config's ``methods`` name (their ``unlearn`` keys)."""
    names = [parse_method(s)[0] for s in cfg.get("methods", []) if isinstance(s, str)]
    return {plugins.split_ref(n)[1] for n in names if plugins.is_plugin(n)}


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
    kind = _task(cfg)
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


def check_methods(cfg: Mapping, schema: Mapping, load_plugins: bool) -> None:
    """Every method entry is valid (``_check_spec``) and has a name of its own."""
    ids: dict[str, str] = {}
    for spec in cfg["methods"]:
        _check_spec(cfg, schema, spec, load_plugins, "methods")
        mid = plugins.method_id(spec)
        if mid in ids:
            raise ConfigError(f"config key 'methods': {spec!r} and {ids[mid]!r} share the name {mid!r}; rename one")
        ids[mid] = spec


def check_tuning(cfg: Mapping, schema: Mapping, load_plugins: bool) -> None:
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


def method_ids(config: Mapping) -> dict[str, str]:
    """Each method entry's name in paths and tables (umia.plugins.method_id) -> the entry."""
    return {plugins.method_id(spec): spec for spec in config["methods"]}
