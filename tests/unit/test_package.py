"""What the package says of itself agrees: its version in pyproject.toml, umia.__version__ and
CITATION.cff; its licence in pyproject.toml and LICENSE."""

import tomllib
from pathlib import Path

import yaml

import umia

ROOT = Path(__file__).resolve().parents[2]


def test_version_and_licence_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert project["version"] == umia.__version__ == str(citation["version"])
    assert project["license"]["text"] == citation["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "Inexact Unlearning" in citation["preferred-citation"]["title"]
    assert f"## {umia.__version__}" in (ROOT / "CHANGELOG.md").read_text()
