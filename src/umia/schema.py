"""The config's JSON schema: loading it, numbers in any YAML spelling cast to the schema's type,
a validator that fills each key's default as it validates, and one line per error naming the key
and what it must be (with the nearest known name for a misspelled key)."""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
from collections.abc import Mapping

import jsonschema
import yaml


def fill(into: dict, defaults: Mapping) -> None:
    """Set every key of ``defaults`` that ``into`` lacks, recursing into mappings."""
    for key, value in defaults.items():
        if key not in into:
            into[key] = copy.deepcopy(value)
        elif isinstance(value, Mapping) and isinstance(into[key], dict):
            fill(into[key], value)


_INT = re.compile(r"[+-]?\d+")


def _types(schema: Mapping) -> list[str]:
    t = schema.get("type", [])
    return [t] if isinstance(t, str) else list(t)


BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _number(text: str, types: list[str]):
    """``text`` as the number (or boolean) the schema's ``types`` want, or ``text`` itself where it
    is none."""
    s = text.strip()
    if "boolean" in types and s.lower() in BOOLEANS:
        return BOOLEANS[s.lower()]
    if _INT.fullmatch(s) and ("integer" in types or "number" in types):
        return int(s)
    if "number" in types:
        try:
            return float(s)
        except ValueError:
            return text
    return text


def cast(instance, schema: Mapping):
    """``instance`` with every string that stands for a number (or a boolean) where the schema wants
    one (and no string) made that number: YAML 1.1 reads ``1e-2`` as a string, and ``--config``
    gives values as strings (``overwrite=true``, ``train={'epochs': 20}``). Recurses through
    properties, additional properties and array items; returns the same object for anything else,
    so validation reports what does not cast."""
    types = _types(schema)
    if isinstance(instance, str) and not isinstance(instance, bool) and "string" not in types:
        return _number(instance, types)
    if isinstance(instance, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key, value in instance.items():
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            if sub is not None:
                instance[key] = cast(value, sub)
    elif isinstance(instance, list) and isinstance(schema.get("items"), Mapping):
        for i, value in enumerate(instance):
            instance[i] = cast(value, schema["items"])
    return instance


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def _with_defaults(validator_class):
    """A validator that fills in each property's default before validating it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


Validator = _with_defaults(jsonschema.Draft7Validator)


def load_schema(path: str | os.PathLike) -> dict:
    """The config schema (workflow/schemas/config.schema.yaml) as a dict."""
    with open(path) as f:
        return yaml.safe_load(f)


def message(error: jsonschema.ValidationError) -> str:
    """A schema error as one line naming the key and what it must be."""
    key = _path(error)
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in known]
        where = "" if key == "(top level)" else f"{key}."
        name = f"{where}{unknown[0]}" if unknown else key
        near = difflib.get_close_matches(str(unknown[0]), known, n=1, cutoff=0.6) if unknown else []
        hint = f"did you mean '{where}{near[0]}'?" if near else f"known keys here: {', '.join(known)}"
        return f"config: unknown key '{name}'; {hint} (config/config.yaml has them all)"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"config key '{key}': {error.instance!r} is not one of: {allowed}"
    if error.validator == "type":
        wanted = _types(error.schema)
        if isinstance(error.instance, str) and ("number" in wanted or "integer" in wanted):
            if "number" in wanted:
                return f"config key '{key}': {error.instance!r} is not a number; write one, as in 0.01, 1e-4 or 16"
            return f"config key '{key}': {error.instance!r} is not a whole number; write one, as in 16"
        return f"config key '{key}': {error.instance!r} must be of type {error.validator_value}"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
        return (
            f"config key '{key}': {error.instance!r} out of range; it must be "
            f"{op[error.validator]} {error.validator_value}"
        )
    if error.validator == "pattern":
        return f"config key '{key}': {error.instance!r} does not match {error.validator_value}"
    return f"config key '{key}': {error.message}"


def _cell(value) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return "`" + text.replace("|", "\\|") + "`"


def _rows(props: Mapping, prefix: str = ""):
    for key, sub in props.items():
        name = f"{prefix}{key}"
        if key == "unlearn" and not prefix:
            for method, spec in sub.get("properties", {}).items():
                defaults = {k: v.get("default") for k, v in spec.get("properties", {}).items()}
                yield f"unlearn.{method}", spec.get("description", ""), defaults
        elif "properties" in sub:
            yield from _rows(sub["properties"], f"{name}.")
        else:
            yield name, sub.get("description", ""), sub.get("default")


def reference(schema: Mapping) -> str:
    """The configuration reference as a Markdown table, one row per key (``unlearn``: one a method,
    its settings' defaults as the default), from the schema's descriptions and defaults. The
    table of docs/configuration.md is this (``python -m umia.schema`` rewrites it)."""
    lines = ["| key | meaning | default |", "| --- | --- | --- |"]
    for name, description, default in _rows(schema["properties"]):
        text = " ".join(str(description).split()).replace("|", "\\|")
        lines.append(f"| `{name}` | {text} | {_cell(default)} |")
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- reference: python -m umia.schema -->\n", "<!-- end of reference -->\n"


def update_reference(doc: str | os.PathLike, schema_path: str | os.PathLike) -> bool:
    """Rewrite the reference table between the markers of ``doc``; True if it changed."""
    text = open(doc).read()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + reference(load_schema(schema_path)) + END + tail
    if new != text:
        open(doc, "w").write(new)
    return new != text


if __name__ == "__main__":  # python -m umia.schema: refresh docs/configuration.md from the schema
    import sys
    from pathlib import Path

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    changed = update_reference(root / "docs/configuration.md", root / "workflow/schemas/config.schema.yaml")
    print("docs/configuration.md " + ("rewritten from the schema" if changed else "already matches the schema"))
