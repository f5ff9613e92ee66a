"""Plug-ins from outside the package: unlearning methods and networks named in the config.

A plug-in is named ``module.path:function`` (an importable module) or ``path/to/file.py:function``
(a file, relative to the folder snakemake runs in). A method plug-in declares its settings with
``umia.plugins.method``::

    from umia.plugins import method

    @method(settings={"alpha": 10.0, "epochs": 1}, checks={"alpha": {"exclusiveMinimum": 0}})
    def ssd(ctx, model, forget, retain, s, gen): ...

and is then listed as ``methods: ["path/to/ssd.py:ssd@alpha=5"]``. Its contract is that of every
built-in method (``umia.methods.Context``). A network plug-in is a callable
``(in_shape, n_classes, width) -> nn.Module`` named as ``network: "mylab.nets:WideResNet"``.

This module imports no torch; loading a plug-in imports whatever the plug-in imports.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umia.errors import ConfigError
from umia.registry import TASKS

# the arguments of every unlearning method, built-in or plug-in (umia.methods.Context documents them)
METHOD_ARGS = ("ctx", "model", "forget", "retain", "s", "gen")


@dataclass(frozen=True)
class Declared:
    """What a method plug-in declares: its settings' defaults, JSON-schema checks per setting
    (``{"lr": {"exclusiveMinimum": 0}}``), the tasks it applies to, and whether its jobs need the
    retrain models' scores (then ``s["target_phi"]`` holds each forget example's retrain mean)."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    checks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tasks: tuple[str, ...] = TASKS
    needs_retrain_scores: bool = False
    label: str = ""  # its name in figures and the report (default: the function's name)

    def schema(self) -> dict:
        """A JSON schema of the declared settings: each one's type from its default, plus its checks."""
        props = {}
        for name, default in self.settings.items():
            kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(default))
            props[name] = {**({"type": kind} if kind else {}), **self.checks.get(name, {})}
        return {"type": "object", "properties": props}


def method(
    *,
    settings: Mapping[str, Any] | None = None,
    checks: Mapping[str, Mapping[str, Any]] | None = None,
    tasks: tuple[str, ...] = TASKS,
    needs_retrain_scores: bool = False,
    label: str = "",
) -> Callable[[Callable], Callable]:
    """Declare a function an unlearning method: its settings with their defaults, checks of their
    values (JSON-schema keywords: ``minimum``, ``exclusiveMinimum``, ``maximum``, ``enum``...), the
    tasks it applies to ("image", "text"), whether it needs the retrain models' scores, and its
    name in figures and the report (``label``; default: the function's name)."""
    unknown = [c for c in (checks or {}) if c not in (settings or {})]
    if unknown:
        raise ValueError(f"checks for undeclared settings {unknown}; declare them in settings")
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"unknown tasks {bad}; known: {', '.join(TASKS)}")

    def wrap(fn: Callable) -> Callable:
        fn.umia_method = Declared(dict(settings or {}), dict(checks or {}), tuple(tasks), needs_retrain_scores, label)
        return fn

    return wrap


def is_plugin(name: str) -> bool:
    """Whether a method or network name refers to a plug-in (``module:attr`` or ``file.py:attr``)."""
    return ":" in name


def split_ref(ref: str) -> tuple[str, str]:
    """``"where:attr"`` into (where, attr)."""
    where, _, attr = ref.rpartition(":")
    return where, attr


def source_path(ref: str) -> Path | None:
    """The source file of a plug-in, without importing it (a file plug-in's path; a module's
    file as the import system finds it); None where there is none to find."""
    where, _ = split_ref(ref)
    if where.endswith(".py"):
        return Path(where)
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin not in (None, "built-in", "frozen") else None


def source_hash(ref: str) -> str:
    """A short sha256 of the plug-in's source file ("" where it has none)."""
    path = source_path(ref)
    if path is None or not path.is_file():
        return ""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def load(ref: str, key: str) -> Callable:
    """Import the plug-in ``ref`` and return its callable; ConfigError naming ``key`` otherwise."""
    where, attr = split_ref(ref)
    if not where or not attr:
        raise ConfigError(
            f"config key '{key}': {ref!r} is not a plug-in name; write module:function or file.py:function"
        )
    # a module in the run folder imports in the workflow's process and in its jobs alike (a job's
    # script runs from .snakemake/scripts, and Python puts only that folder on its path)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    if where.endswith(".py"):
        module = _load_file(Path(where), ref, key)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as e:  # ImportError, or anything the module raises as it runs
            raise ConfigError(
                f"config key '{key}': {ref!r}: module {where!r} does not import ({type(e).__name__}: {e}); "
                "install it or put its folder on PYTHONPATH"
            ) from e
    if not hasattr(module, attr):
        raise ConfigError(f"config key '{key}': {ref!r}: {where} has no {attr!r}; check the name after the colon")
    fn = getattr(module, attr)
    if not callable(fn):
        raise ConfigError(f"config key '{key}': {ref!r}: {attr} is of type {type(fn).__name__}, not a callable")
    return fn


def _load_file(path: Path, ref: str, key: str):
    if not path.is_file():
        raise ConfigError(
            f"config key '{key}': {ref!r}: file {path} does not exist; fix the path (relative to the run folder)"
        )
    name = "umia_plugin_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    if str(path.resolve().parent) not in sys.path:  # helper modules beside it import too
        sys.path.append(str(path.resolve().parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise ConfigError(
            f"config key '{key}': {ref!r}: {path} does not import ({type(e).__name__}: {e}); fix the file"
        ) from e
    return module


def load_method(ref: str) -> tuple[Callable, Declared]:
    """A method plug-in and its declaration (an undecorated function declares no settings)."""
    fn = load(ref, "methods")
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = None
    positional = [p for p in params or [] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    varargs = any(p.kind == p.VAR_POSITIONAL for p in params or [])
    required = [p for p in params or [] if p.default is p.empty and p.kind in (p.KEYWORD_ONLY,)]
    if params is None or required or (len(positional) != len(METHOD_ARGS) and not varargs):
        shown = ", ".join(p.name for p in params or [])
        raise ConfigError(
            f"config key 'methods': {ref!r} takes ({shown}) but a method takes ({', '.join(METHOD_ARGS)}); "
            "see docs/own-method.md"
        )
    return fn, getattr(fn, "umia_method", Declared())


def check_network(build: Callable, name: str, in_shape: tuple[int, int, int], n_classes: int, width: int):
    """Build a network with ``build(in_shape, n_classes, width)`` and run a batch of two blank
    images through it on the CPU: it must be an ``nn.Module`` giving (2, n_classes) logits.
    Returns the network; ConfigError naming ``network`` otherwise. (Imports torch.)"""
    import torch

    shape = tuple(int(d) for d in in_shape)
    try:
        with torch.random.fork_rng(devices=[]):
            net = build(shape, n_classes, width)
            if not isinstance(net, torch.nn.Module):
                raise ConfigError(
                    f"config key 'network': {name!r} returned a {type(net).__name__}, not a torch.nn.Module"
                )
            was_training = net.training
            with torch.no_grad():
                out = net.eval()(torch.zeros(2, *shape))
            net.train(was_training)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"config key 'network': {name!r} fails on a batch of 2 images {shape} ({type(e).__name__}: {e}); "
            "it must be a callable (in_shape, n_classes, width) -> torch.nn.Module"
        ) from e
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"config key 'network': {name!r} maps a batch of 2 images {shape} to {got}; "
            f"it must return logits of shape (batch, {n_classes})"
        )
    return net


def method_id(spec: str) -> str:
    """The name a method entry has in paths and tables: a built-in entry as written, a plug-in's
    function name with the entry's overrides (``examples/ssd.py:ssd@alpha=5`` -> ``ssd@alpha=5``)."""
    name, _, rest = spec.partition("@")
    if not is_plugin(name):
        return spec
    return split_ref(name)[1] + (f"@{rest}" if rest else "")
