# Validation and named input functions only; no heavy imports (every SLURM job re-parses this).
import sys
from pathlib import Path

from umia.config import (
    NEEDS_RETRAIN_SCORES,
    ConfigError,
    config_hash,
    load_schema,
    method_settings,
    parse_method,
    resolve,
)

try:  # resolved in place, so scripts see the defaults too (snakemake.config)
    config.update(resolve(config, load_schema(Path(workflow.current_basedir) / "../schemas/config.schema.yaml")))
except ConfigError as e:
    sys.exit(f"umia: {e}")

R = f"{config['results_dir']}/{config['experiment']}"
HASH = config_hash(config)
SHARDS = range(config["n_models"] // config["shard_size"])
KEEP = config["keep_checkpoints"]
GPUS = 0 if config["device"] == "cpu" else 1  # model jobs ask the scheduler for a GPU unless device: cpu
DATA = f"{R}/data/dataset.npz"
CANDIDATES = f"{R}/plan/candidates.parquet"
MEMBERSHIP = f"{R}/plan/membership.parquet"
SCORES = f"{R}/scores/scores.parquet"
TRAJECTORY = f"{R}/trajectory/trajectory.parquet"  # not under scores/, which reads as one dataset
EXAMPLES = f"{R}/plan/examples.parquet"
RATES = f"{R}/tables/rates.parquet"
REACH = f"{R}/tables/reach.parquet"


wildcard_constraints:
    shard=r"\d+",
    method=r"[A-Za-z0-9_@=.,+-]+",


def shard_job():
    """Settings every model-producing job shares, for its script's keyword arguments. Only what
    defines the results goes into params (a change reruns the job); where the job runs (device)
    the script reads from the config."""
    return dict(
        shard_size=config["shard_size"],
        seed=config["seed"],
        network=config["network"],
        views=config["views"],
        config_hash=HASH,
    )


def attempt_number(wildcards, attempt):
    """The job's attempt, as a resource its script can read (retries are tested by fault injection)."""
    return attempt


def unlearn_params(wildcards):
    name, _ = parse_method(wildcards.method)
    return dict(
        method=wildcards.method,
        method_name=name,
        settings=method_settings(config, wildcards.method),
        width=config["train"]["width"],
        rate_points=config["rates"]["points"],
        **shard_job(),
    )


def retrain_scores(wildcards):
    """The retrain models' scores, for the methods that stop on the retrain mean of each example."""
    if parse_method(wildcards.method)[0] not in NEEDS_RETRAIN_SCORES:
        return []
    return [f"{R}/shards/retrain/retrain/shard-{s:03d}.parquet" for s in SHARDS]


def shard_trajectories(wildcards=None):
    """Every unlearning job's record of its forget examples' phi during the run."""
    return [f"{R}/shards/trajectory/{m}/shard-{s:03d}.parquet" for m in config["methods"] for s in SHARDS]


def shard_scores(wildcards=None):
    """Every shard score file of the current N and methods."""
    stages = [("original", "none"), ("retrain", "retrain")]
    stages += [("unlearned", m) for m in config["methods"]]
    return [f"{R}/shards/{st}/{m}/shard-{s:03d}.parquet" for st, m in stages for s in SHARDS]


def model_outputs(stage, method, keep):
    """A model job's outputs: its scores, and its checkpoint when kept."""
    out = dict(scores=f"{R}/shards/{stage}/{method}/shard-{{shard}}.parquet")
    if keep:
        out["ckpt"] = f"{R}/models/{stage}/{method}/shard-{{shard}}.pt"
    return out


def final_outputs():
    figures = [f for f in FIGURES if config["methods"] or f not in RATE_FIGURES]
    return [
        MEMBERSHIP,
        f"{R}/tables/summary.csv",
        f"{R}/tables/per_example.parquet",
        f"{R}/tables/findings.csv",
        f"{R}/report/summary.html",
        *[f"{R}/figures/{f}.{e}" for f in figures for e in ("png", "pdf")],
    ]
