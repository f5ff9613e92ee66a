"""The shipped profiles reach every rule they mean: Snakemake keys set-resources and set-threads
by rule name, so a rule derived with `use rule A as B` (the tuning stage's, the study's tuned
unlearning) gets none of A's entries unless B is listed too."""

import re

import pytest
import yaml

from .conftest import ROOT, snakemake

PROFILES = sorted((ROOT / "profiles").glob("*/config.v8+.yaml"))
DERIVED = [
    m.groups()
    for f in sorted((ROOT / "workflow/rules").glob("*.smk"))
    for m in re.finditer(r"^use rule (\w+) as (\w+)", f.read_text(), re.M)
]


def test_the_rules_derived_with_use_rule_are_found():
    assert ("unlearn", "unlearn_tuned") in DERIVED
    assert ("unlearn", "tune_unlearn") in DERIVED
    assert ("attacks", "tune_attacks") in DERIVED


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.parent.name)
@pytest.mark.parametrize("key", ["set-resources", "set-threads"])
def test_a_derived_rule_gets_its_parents_profile_entry(profile, key):
    entries = yaml.safe_load(profile.read_text()).get(key) or {}
    missing = [f"{b} (from {a})" for a, b in DERIVED if a in entries and entries.get(b) != entries[a]]
    assert not missing, f"{profile}: {key} lacks {missing}"


def test_the_slurm_profile_gives_the_tuning_jobs_the_model_jobs_resources(tmp_path):
    """A dry run through the SLURM plugin: the tuning stage's jobs ask for what a model job asks."""
    (tmp_path / "run.yaml").write_text(yaml.safe_dump({"results_dir": str(tmp_path)}))
    out = snakemake(
        "-n",
        "--workflow-profile",
        "profiles/slurm",
        "--configfile",
        str(ROOT / "tests/workflow/tiny_tune.yaml"),
        str(tmp_path / "run.yaml"),
    ).stdout
    jobs = re.findall(r"rule (\w+):\n(?:    .*\n)*?    resources: (.*)\n", out)
    got = {rule: res for rule, res in jobs}
    for rule in ("train_original", "tune_train_original", "tune_train_retrain", "tune_unlearn"):
        assert rule in got, f"no {rule} job in the dry run"
        assert "runtime=60" in got[rule] and "mem_mb=32000" in got[rule], (rule, got[rule])
