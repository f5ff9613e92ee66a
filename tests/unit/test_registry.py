"""Everything registered in ``umia.registry`` is covered everywhere it has to be: the config
schema accepts it, README.md names it, a figure has its caption and its drawing.

One test per (check, name), so a failure names exactly what is missing where. The schema is read
as it stands (plain YAML, not umia.config's loader), so a schema that accepts more than an enum
(a ``pattern``, or ``anyOf`` of an enum and a pattern, e.g. ``module:Callable`` plug-ins) is checked
as such.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from umia import registry
from umia.report import figures as plots

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
README = REPO / "README.md"
DOCS = REPO / "docs"
CONFIG_DOC = DOCS / "configuration.md"
CAPTIONS = REPO / "workflow" / "report"
BUILTIN = "umia."  # a built-in method's function lives in umia (a plug-in's elsewhere)


@cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


@cache
def _readme() -> str:
    """The user's documentation: README.md and the pages of docs/."""
    return "\n".join(f.read_text(encoding="utf-8") for f in [README, *sorted(DOCS.glob("*.md"))])


def _mentions(text: str, name: str) -> bool:
    """``name`` as a word of ``text`` (case-sensitive; not as a file extension such as ``.npz``)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text) is not None


def _key_rows(key: str) -> list[str]:
    """docs/configuration.md's table rows of ``key`` (one in each table that lists it)."""
    return [line for line in CONFIG_DOC.read_text().splitlines() if line.startswith(f"| `{key}` |")]


def _accepts(prop: dict, value: str) -> bool:
    """Whether a schema property (enum, pattern, or anyOf/oneOf of them) accepts a string."""
    branches = prop.get("anyOf") or prop.get("oneOf")
    if branches:
        return any(_accepts(b, value) for b in branches)
    if "enum" in prop and value not in prop["enum"]:
        return False
    if "pattern" in prop and re.search(prop["pattern"], value) is None:
        return False
    return "enum" in prop or "pattern" in prop


def _describe(prop: dict) -> str:
    if prop.get("anyOf") or prop.get("oneOf"):
        return " or ".join(_describe(b) for b in prop.get("anyOf") or prop.get("oneOf"))
    parts = [f"enum {prop['enum']}"] if "enum" in prop else []
    parts += [f"pattern {prop['pattern']!r}"] if "pattern" in prop else []
    return " and ".join(parts) or "neither an enum nor a pattern"


# datasets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(registry.DATASETS))
def test_dataset_in_schema(name):
    prop = _schema()["properties"]["dataset"]["properties"]["name"]
    assert _accepts(prop, name), (
        f"dataset {name!r} is registered but {SCHEMA.name}'s dataset.name ({_describe(prop)}) does not accept it"
    )


@pytest.mark.parametrize("name", list(registry.DATASETS))
def test_dataset_in_readme_key_table(name):
    rows = _key_rows("dataset.name")
    assert rows, "README.md has no configuration-table row for `dataset.name`"
    assert any(_mentions(r, name) for r in rows), (
        f"dataset {name!r} is registered but README.md's `dataset.name` row(s) of the key table do not name it"
    )


# networks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(registry.NETWORKS))
def test_network_in_schema(name):
    prop = _schema()["properties"]["network"]
    assert _accepts(prop, name), (
        f"network {name!r} is registered but {SCHEMA.name}'s network ({_describe(prop)}) does not accept it"
    )


# methods --------------------------------------------------------------------------------------

BUILTIN_METHODS = [m for m, spec in registry.METHODS.items() if spec.function.startswith(BUILTIN)]


def test_every_method_is_builtin():
    assert BUILTIN_METHODS == list(registry.METHODS)  # plug-ins are declared by umia.plugins, not here


@pytest.mark.parametrize("name", BUILTIN_METHODS)
def test_method_has_schema_settings(name):
    unlearn = _schema()["properties"]["unlearn"]["properties"]
    assert name in unlearn, f"method {name!r} is registered but {SCHEMA.name} has no unlearn.{name} entry"
    assert unlearn[name].get("type") == "object" and "properties" in unlearn[name], (
        f"{SCHEMA.name}'s unlearn.{name} is not an object of settings"
    )


@pytest.mark.parametrize("name", BUILTIN_METHODS)
def test_method_in_readme(name):
    assert _mentions(_readme(), name), f"method {name!r} is registered but README.md does not mention it"


# attacks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(registry.ATTACKS))
def test_attack_has_label_colour_figures_and_tasks(name):
    spec = registry.ATTACKS[name]
    assert spec.label.strip(), f"attack {name!r} has no label"
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", spec.colour), f"attack {name!r}: colour {spec.colour!r} is not #rrggbb"
    unknown = [f for f in spec.figures if f not in registry.FIGURES]
    assert not unknown, f"attack {name!r} lists unregistered figure(s) {unknown}"
    assert spec.tasks and set(spec.tasks) <= set(registry.TASKS), f"attack {name!r}: tasks {spec.tasks}"


def test_attack_colours_and_labels_are_distinct():
    specs = registry.ATTACKS.values()
    assert len({s.colour.lower() for s in specs}) == len(specs)
    assert len({s.label for s in specs}) == len(specs)


@pytest.mark.parametrize("name", list(registry.ATTACKS))
def test_attack_in_readme(name):
    assert _mentions(_readme(), name), f"attack {name!r} is registered but README.md does not mention it"


# figures --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(registry.FIGURES))
def test_figure_has_caption(name):
    caption = CAPTIONS / f"{name}.rst"
    assert caption.is_file(), f"figure {name!r} is registered but its caption {caption.relative_to(REPO)} is missing"
    assert caption.read_text(encoding="utf-8").strip(), f"{caption.relative_to(REPO)} is empty"


@pytest.mark.parametrize("name", list(registry.FIGURES))
def test_figure_has_drawing(name):
    assert callable(plots.DRAW.get(name)), (
        f"figure {name!r} is registered but umia.report.figures.DRAW has no drawing for it"
    )


@pytest.mark.parametrize("name", list(registry.FIGURES))
def test_figure_in_readme(name):
    assert _mentions(_readme(), name), f"figure {name!r} is registered but README.md does not mention it"


@pytest.mark.parametrize("name", list(registry.FIGURES))
def test_figure_spec(name):
    spec = registry.FIGURES[name]
    assert spec.category.strip(), f"figure {name!r} has no report category"
    assert spec.tasks and set(spec.tasks) <= set(registry.TASKS), f"figure {name!r}: tasks {spec.tasks}"
    assert spec.needs_method is None or spec.needs_method in registry.METHODS, (
        f"figure {name!r} needs method {spec.needs_method!r}, which is not registered"
    )


def test_no_drawing_or_caption_without_a_figure():
    assert not set(plots.DRAW) - set(registry.FIGURES), "umia.report.figures.DRAW draws figures that are not registered"
    pages = {"summary", "workflow"}  # the report's summary page and its workflow description
    stale = sorted(p.stem for p in CAPTIONS.glob("*.rst") if p.stem not in pages and p.stem not in registry.FIGURES)
    assert not stale, f"captions under workflow/report/ of no registered figure: {stale}"
