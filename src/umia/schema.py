"""The config's JSON schema: loading it, a validator that fills each key's default as it
validates, and one line per error naming the key and what it must be."""

from __future__ import annotations

import copy
import os
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
        return f"config: unknown key under '{key}': {error.message}; check the spelling against config/config.yaml"
    if error.validator == "enum":
        allowed = ", ".join(map(str, error.validator_value))
        return f"config key '{key}': {error.instance!r} is not one of: {allowed}"
    if error.validator == "type":
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
