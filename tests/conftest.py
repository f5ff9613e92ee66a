"""The test tiers: every end-to-end run (tests/workflow, tests/cluster) is ``slow``, so
``pytest -m "not slow"`` is the quick tier a contributor runs while working (the unit tests, a
minute or two on 2 cores); plain ``pytest`` runs everything, as CI does."""

import pytest

SLOW_FOLDERS = {"workflow", "cluster"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FOLDERS & set(item.path.relative_to(item.config.rootpath).parts[:2]):
            item.add_marker(pytest.mark.slow)
