"""A finished study is never replaced by a changed config without a word (umia.runtime.study):
a changed result-defining key stops the run with one line naming it; growing the study does not."""

import copy

import numpy as np
import pandas as pd
import pytest

from umia import io
from umia.config import config_hash, resolve
from umia.runtime import study


@pytest.fixture
def cfg(raw_config, schema):
    return resolve(raw_config, schema)


def _with(cfg, schema, **changes):
    new = copy.deepcopy(cfg)
    for key, value in changes.items():
        section, _, leaf = key.partition("__")
        if leaf:
            new[section] = {**new[section], leaf: value}
        else:
            new[section] = value
    return resolve(new, schema)


def test_a_changed_result_key_stops_with_one_line_naming_it(tmp_path, cfg, schema):
    study.stamp(tmp_path, cfg)
    study.check(tmp_path, cfg)  # the same study: on
    changed = _with(cfg, schema, train__epochs=cfg["train"]["epochs"] + 1, seed=7)
    with pytest.raises(study.StudyChanged) as e:
        study.check(tmp_path, changed)
    line = str(e.value)
    assert "\n" not in line
    assert f"train.epochs {cfg['train']['epochs']} -> {cfg['train']['epochs'] + 1}" in line and "seed 0 -> 7" in line
    assert "set experiment: to a new name" in line and "--config overwrite=true" in line
    study.check(tmp_path, changed, overwrite=True)  # replacing it, asked for


def test_growing_the_study_is_not_a_change(tmp_path, cfg, schema):
    """More models, another method, a tuning grid: what the design extends a study with."""
    study.stamp(tmp_path, cfg)
    grown = _with(cfg, schema, n_models=cfg["n_models"] * 2, methods=[*cfg["methods"], "gradient_ascent@lr=0.02"])
    grown = _with(grown, schema, tune={"finetune": {"lr": [0.01, 0.1]}})
    study.check(tmp_path, grown)


def test_a_folder_from_before_the_stamp_is_judged_by_its_tables_hash(tmp_path, cfg, schema):
    study.check(tmp_path / "new", cfg)  # nothing there yet: on
    ids = pd.DataFrame({"example_id": np.arange(3), "label": np.zeros(3, np.int64)})
    io.write_table(ids, tmp_path / "plan/candidates.parquet", io.CANDIDATES, config_hash(cfg))
    study.check(tmp_path, cfg)
    other = _with(cfg, schema, seed=3)
    with pytest.raises(study.StudyChanged, match=f"another config \\(hash {config_hash(cfg)}, this config"):
        study.check(tmp_path, other)
