"""Shared fixtures of the unit tests.

BLAS/OpenMP thread pools are limited to one thread: the attack tests fit many tiny logistic
regressions, and on a 2-core machine a second BLAS thread makes each ~25x slower (spin-waiting),
which would take the suite well past a minute.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from threadpoolctl import threadpool_limits

threadpool_limits(1)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "config.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="session")
def schema() -> dict:
    from umia.config import load_schema

    return load_schema(SCHEMA)


@pytest.fixture
def raw_config() -> dict:
    """The repository's config/config.yaml as a fresh dict (tests may mutate it)."""
    with open(CONFIG) as f:
        return yaml.safe_load(f)
