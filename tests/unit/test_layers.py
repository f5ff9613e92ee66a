"""The folder tree is the architecture: each layer of ``src/umia`` imports only from the layers
below it, the modules the Snakefile reads on every parse import no torch or matplotlib, no module
imports another's private name, and the package never imports Snakemake but in the umia command
(docs/design.md)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "umia"
# lowest first: a module may import its own layer and the layers before it
LAYERS = ["base", "runtime", "tasks", "methods", "attacks", "report", "stages", "api"]
BASE = {"__init__", "errors", "registry", "io", "plan", "config", "plugins", "schema", "entries"}
API = {"cli", "api"}
# read by the Snakefile on every parse (a cluster job re-parses it): no torch, no matplotlib;
# and the tasks' data sides, which the light stages call
LIGHT = [
    "umia",
    "umia.errors",
    "umia.registry",
    "umia.io",
    "umia.plan",
    "umia.config",
    "umia.schema",
    "umia.entries",
    "umia.plugins",
    "umia.runtime.gpus",
    "umia.runtime.runlock",
    "umia.runtime.study",
    "umia.report.status",
    "umia.tasks",
    "umia.tasks.image.data",
    "umia.tasks.text.corpus",
]


def modules() -> dict[str, Path]:
    out = {}
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = f.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    if parts[1] in API:
        return "api"
    if parts[1] in BASE or len(parts) == 2 and parts[1] not in LAYERS:
        return "base"
    return parts[1]


def imports(path: Path) -> list[tuple[str, int]]:
    """Every umia module a file imports (at its top or inside a function), with its line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "umia"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "umia":
            out.append((node.module, node.lineno))
            known = modules()
            out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names if f"{node.module}.{a.name}" in known]
    return out


def test_every_module_has_a_layer():
    for name in modules():
        assert layer(name) in LAYERS, name


def test_layers_import_only_downward():
    bad = []
    for name, path in modules().items():
        mine = LAYERS.index(layer(name))
        for target, line in imports(path):
            if target == "umia" or (name, target) == ("umia", "umia.api"):
                continue  # the package itself (its version); its lazy facade umia.load
            if LAYERS.index(layer(target)) > mine:
                bad.append(f"{path.relative_to(SRC)}:{line} ({layer(name)}) imports {target} ({layer(target)})")
    assert not bad, "a lower layer imports a higher one:\n" + "\n".join(bad)


def test_layer_rule_catches_an_upward_import(tmp_path):
    """The rule itself, on a file that imports upward (a base module importing the attacks)."""
    f = tmp_path / "io.py"
    f.write_text("from umia.attacks import run\nimport umia.stages.gather\n")
    found = [t for t, _ in imports(f)]
    assert "umia.attacks.run" in found and "umia.stages.gather" in found
    assert LAYERS.index(layer("umia.attacks.run")) > LAYERS.index(layer("umia.io"))


def test_no_private_name_crosses_modules():
    bad = []
    for path in modules().values():
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("umia"):
                for a in node.names:
                    if a.name.startswith("_"):
                        bad.append(f"{path.relative_to(SRC)}:{node.lineno} imports {node.module}.{a.name}")
                    aliases[a.asname or a.name] = node.module
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("umia"):
                        aliases[a.asname or a.name.split(".")[0]] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_the_package_never_imports_snakemake():
    """Only the umia command drives Snakemake (through its Python API); the library never does."""
    for name, path in modules().items():
        if name == "umia.cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.split(".")[0] == "snakemake" for n in names), f"{name} imports Snakemake"


@pytest.mark.parametrize("heavy", ["torch", "matplotlib"])
def test_light_modules_import_no_torch_or_matplotlib(heavy):
    """What the Snakefile reads on every parse, and validating the default config, loads neither."""
    code = (
        "import sys, yaml\n"
        f"import {', '.join(LIGHT)}\n"
        "from umia.config import load_schema, resolve\n"
        "root = sys.argv[1]\n"
        "cfg = yaml.safe_load(open(root + '/config/config.yaml'))\n"
        "resolve(cfg, load_schema(root + '/workflow/schemas/config.schema.yaml'))\n"
        f"print({heavy!r} in sys.modules)\n"
    )
    root = str(SRC.parent)
    out = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, cwd=root, check=True)
    assert out.stdout.strip() == "False", f"{heavy} was imported"


def test_every_module_imports():
    """The quick tier (pytest -m "not slow") touches every module: each imports on its own."""
    import importlib

    for name in modules():
        importlib.import_module(name)
