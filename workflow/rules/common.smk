# Validation and named input functions only; no heavy imports (every SLURM job re-parses this).
import sys
from pathlib import Path

from umia.config import (
    NEEDS_RETRAIN_SCORES,
    TEXT_DATASETS,
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
TEXT = config["dataset"]["name"] in TEXT_DATASETS  # a causal language model per shadow model
GPUS = 0 if config["device"] == "cpu" else 1  # model jobs ask the scheduler for a GPU unless device: cpu
# threads of a model job; text on a CPU runs one: a small language model's matrices are too small
# for a second thread to pay (on 2 shared cores it was 50x slower), and two jobs then run side by side
MODEL_THREADS = 1 if TEXT and config["device"] == "cpu" else 2
DATA = f"{R}/data/corpus.parquet" if TEXT else f"{R}/data/dataset.npz"
BASE = config["lm"]["base_model"] or f"{R}/base"  # text: the model every shadow model is fine-tuned from
LM_STATS = f"{R}/lm_stats/lm_stats.parquet"  # text: Min-K%, zlib ratio per (model, example); not under scores/
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


def task_script(name):
    """The script of a rule whose text task has its own: ../scripts/<name>.py, or for text
    ../scripts/text_<name>.py (so the image task's scripts, and its finished jobs, stay as they were)."""
    return f"../scripts/{'text_' if TEXT else ''}{name}.py"


def data_params():
    """What defines the prepared data (a change reruns prepare_data); where it comes from (root,
    path, download, sha256) may change without rerunning anything, and the script reads it from the config."""
    keys = ("name", "pool_size", "test_size", "pretrain_size") if TEXT else ("name", "test_fraction")
    return {k: config["dataset"][k] for k in keys}


def text_params():
    """Text only: the model jobs' extra settings (the base model, the cut, Min-K%'s share), as a
    ``text`` param; nothing for images, whose params stay as they were."""
    if not TEXT:
        return {}
    text = dict(base=BASE, max_tokens=config["dataset"]["max_tokens"], min_k=config["lm"]["min_k"])
    return dict(text=text)


def base_input():
    """Text with a base model pretrained by the workflow: its folder (rule pretrain_base)."""
    return [f"{R}/base"] if TEXT and not config["lm"]["base_model"] else []


def lm_stats_output(stage, method):
    """Text only: a model job's LM statistics (io.LM_STATS), beside its scores."""
    return dict(lm_stats=f"{R}/shards/lmstats/{stage}/{method}/shard-{{shard}}.parquet") if TEXT else {}


def shard_lm_stats(wildcards=None):
    """Every shard file of LM statistics of the current N and methods (text)."""
    stages = [("original", "none"), ("retrain", "retrain")]
    stages += [("unlearned", m) for m in config["methods"]]
    return [f"{R}/shards/lmstats/{st}/{m}/shard-{s:03d}.parquet" for st, m in stages for s in SHARDS]


def input_lm_stats(wildcards, input):
    """Text: the attacks' LM statistics, as a param (the script passes its params on as keywords)."""
    return input.lm_stats


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
    out = dict(scores=f"{R}/shards/{stage}/{method}/shard-{{shard}}.parquet", **lm_stats_output(stage, method))
    if keep:
        out["ckpt"] = f"{R}/models/{stage}/{method}/shard-{{shard}}.pt"
    return out


def final_outputs():
    figures = [f for f in FIGURES if f in figure_names()]
    return [
        MEMBERSHIP,
        f"{R}/tables/summary.csv",
        f"{R}/tables/per_example.parquet",
        f"{R}/tables/findings.csv",
        f"{R}/report/summary.html",
        *[f"{R}/figures/{f}.{e}" for f in figures for e in ("png", "pdf")],
    ]
