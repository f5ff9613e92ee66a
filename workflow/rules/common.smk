# Validation and named input functions only; no heavy imports (every SLURM job re-parses this).
import math
import os
import sys
from pathlib import Path

from umia import plugins, registry
from umia.runtime import gpus
from umia.runtime import runlock, study
from umia.config import (
    TEXT_SPLIT,
    ConfigError,
    config_hash,
    data_fingerprint,
    load_schema,
    method_ids,
    method_settings,
    parse_method,
    resolve,
    task,
    tuned,
    tuning_grids,
    tuning_seed,
    unlearn_shard_size,
    with_task_defaults,
)

try:  # resolved in place, so scripts see the defaults too (snakemake.config)
    config.update(
        resolve(
            # the task's defaults under the user's keys, above config/config.yaml's image study
            with_task_defaults(config, workflow.config_settings.overwrite_config or {}),
            load_schema(Path(workflow.current_basedir) / "../schemas/config.schema.yaml"),
            # plug-ins are imported and checked once, by the main process; its jobs trust that
            load_plugins=workflow.is_main_process,
        )
    )
except ConfigError as e:
    sys.exit(f"umia: {e}")

R = f"{config['results_dir']}/{config['experiment']}"
HASH = config_hash(config)
if workflow.is_main_process:  # a finished study is not replaced by a changed config without a word
    try:
        study.check(R, config, config["overwrite"])
    except study.StudyChanged as e:
        sys.exit(f"umia: {e}")
    from umia.report.status import plan

    print(plan(R, config), file=sys.stderr)  # the work the study is, before anything runs
TASK = task(config)  # "image" or "text" (umia.registry.DATASETS)
TEXT = TASK == "text"  # a causal language model per shadow model
METHODS = method_ids(config)  # name in paths and tables -> the config's entry
KEEP = config["keep_checkpoints"]
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
# The tuning stage: every setting of the `tune` grids on tuning models of their own seed
# (rules/tune.smk); the study's plain entries with a grid run at the setting tables/tuning.csv picks.
TUNED = set(tuned(config))
T = f"{R}/tuning"
TUNING_TABLE = f"{R}/tables/tuning.csv"
TUNE_SPECS = {plugins.method_id(s): s for specs in tuning_grids(config).values() for s in specs}
TUNE_N = config["tuning"]["n_models"]
# a scope: where a set of models lives, its seed and size, and its method entries (id -> entry)
UNLEARN_K = unlearn_shard_size(config)  # models per unlearning job, a multiple of shard_size
STUDY = dict(
    prefix=R,
    seed=config["seed"],
    n_models=config["n_models"],
    shard_size=config["shard_size"],
    unlearn_shard_size=UNLEARN_K,
    specs=METHODS,
)
TUNE = dict(
    prefix=T,
    seed=tuning_seed(config),
    n_models=TUNE_N,
    shard_size=math.gcd(TUNE_N, config["shard_size"]),
    unlearn_shard_size=math.gcd(TUNE_N, UNLEARN_K),
    specs=TUNE_SPECS,
)


def place_gpu_jobs():
    """A local run spreads its model jobs over the visible GPUs, ``jobs_per_gpu`` at a time on each
    (umia.runtime.gpus); with no GPU they take turns. A ``gpu`` the user gave in --resources caps the
    jobs at once instead. ``-j N`` keeps the slots: which executor runs the jobs decides, not the flag,
    and a cluster executor's jobs get their GPU from its scheduler (``leave_gpus_to_the_cluster``, when
    the run starts: the executor is not known while the Snakefile is read)."""
    if not workflow.is_main_process:
        return
    os.environ.pop(gpus.ENV, None)  # slots are this run's to hand out, not an outer run's
    if not GPUS:
        return
    found = gpus.visible()
    capped = "gpu" in workflow.global_resources
    per = config["jobs_per_gpu"]
    if found and capped:  # a cap above the slots: enough slots for it
        per = max(per, -(-int(workflow.global_resources["gpu"].value) // len(found)))
    if found and "CUDA_VISIBLE_DEVICES" not in os.environ:
        os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # nvidia-smi's numbering, in every job
    slots = gpus.export(found, per) if found else 1
    if not capped:
        workflow.register_resource("gpu", slots)


CAPPED_BY_USER = "gpu" in workflow.global_resources


def leave_gpus_to_the_cluster():
    """At the start of a run whose executor submits jobs elsewhere (SLURM, cluster-generic): no local
    slots, and no cap but the user's; each model job gets its GPU from the cluster's scheduler."""
    if not workflow.is_main_process or not GPUS or workflow.local_exec:
        return
    os.environ.pop(gpus.ENV, None)
    if not CAPPED_BY_USER:
        workflow.register_resource("gpu", 1_000_000)  # as good as none: the cluster places the jobs
    print(
        "umia: a cluster run: its scheduler gives each model job its GPU (no local GPU slots)",
        file=sys.stderr,
    )


place_gpu_jobs()


wildcard_constraints:
    shard=r"\d+",
    method=r"[A-Za-z0-9_@=.,+-]+",
    setting=r"[A-Za-z0-9_@=.,+-]+",


def task_args():
    """What the task needs besides the data: the network and views (images), the base model,
    the cut and Min-K%'s share (text)."""
    if TEXT:
        return dict(
            base=BASE,
            max_tokens=config["dataset"]["max_tokens"],
            min_k=config["lm"]["min_k"],
            adapter=config["train"].get("adapter"),
        )
    return dict(network=config["network"], width=config["train"]["width"], views=config["views"])


def shard_job(stage, scope=STUDY):
    """The keyword arguments of a training job's script. Only what defines the results goes into
    params (a change reruns the job); where the job runs (device) the script reads from the config."""
    return dict(
        task=TASK,
        stage=stage,
        shard_size=scope["shard_size"],
        seed=scope["seed"],
        recipe=config["train"],
        config_hash=HASH,
        task_args=task_args(),
    )


def data_params():
    """What defines the prepared data (a change reruns prepare_data); where it comes from (root,
    path, download, sha256) may change without rerunning anything, and the script reads it from the config."""
    keys = ("name", "pool_size", "test_size", "pretrain_size") if TEXT else ("name", "test_fraction")
    params = {k: config["dataset"][k] for k in keys}
    if TEXT:
        params["split"] = TEXT_SPLIT  # a new layout of the corpus prepares it again
    if registry.DATASETS[config["dataset"]["name"]].needs_path and not TEXT:
        params["data"] = data_fingerprint(config["dataset"])  # npz, folder: the file is the data
    return params


def base_input():
    """Text with a base model pretrained by the workflow: its folder (rule pretrain_base)."""
    return [f"{R}/base"] if TEXT and not config["lm"]["base_model"] else []


def plugin_sources(*names):
    """The source files of the plug-ins among ``names``: inputs, so editing one reruns its jobs."""
    found = [plugins.source_path(n) for n in names if plugins.is_plugin(n)]
    return [str(p) for p in found if p is not None and p.is_file()]


def network_source(wildcards=None):
    return plugin_sources(config["network"])


def method_source(scope=STUDY):
    def sources(wildcards):
        return plugin_sources(parse_method(scope["specs"][wildcards.method])[0], config["network"])

    return sources


def model_outputs(stage, method, keep, prefix=R):
    """A model job's outputs: its scores, the task's other tables, and its checkpoint when kept."""
    out = dict(scores=f"{prefix}/shards/{stage}/{method}/shard-{{shard}}.parquet")
    if TEXT:
        out["lm_stats"] = f"{prefix}/shards/lmstats/{stage}/{method}/shard-{{shard}}.parquet"
    if keep:
        out["ckpt"] = f"{prefix}/models/{stage}/{method}/shard-{{shard}}.pt"
    return out


def attempt_number(wildcards, attempt):
    """The job's attempt, as a resource its script can read (retries are tested by fault injection)."""
    return attempt


def unlearn_params(scope=STUDY, tuned=False):
    """The keyword arguments of an unlearning job's script. A tuned entry of the study (``tuned``)
    runs the setting its path names (``{setting}``: the one tables/tuning.csv picked), under the
    entry's name in the tables."""

    def params(wildcards):
        spec = TUNE_SPECS[wildcards.setting] if tuned else scope["specs"][wildcards.method]
        name, _ = parse_method(spec)
        return dict(
            task=TASK,
            method=wildcards.method,
            method_name=name,
            settings=method_settings(config, spec),
            source=plugins.source_hash(name) if plugins.is_plugin(name) else None,  # an edit reruns it
            rate_points=config["rates"]["points"],
            shard_size=scope["unlearn_shard_size"],
            seed=scope["seed"],
            config_hash=HASH,
            task_args=task_args(),
        )

    return params


def originals(scope=STUDY):
    """The originals' checkpoints an unlearning job reads: the training shards its models are in."""

    def files(wildcards):
        per = scope["unlearn_shard_size"] // scope["shard_size"]
        first = int(wildcards.shard) * per
        return [f"{scope['prefix']}/models/original/none/shard-{s:03d}.pt" for s in range(first, first + per)]

    return files


def study_dir(method):
    """Where a study method's shard files live below shards/<stage>/: its id, and for a tuned
    entry also its picked setting (``<entry>/tuned-<setting id>``), read from tables/tuning.csv,
    the tuning checkpoint's output. A new pick is a new path, so its models are made; a pick
    unchanged keeps its files, and a pick gone back to an earlier one finds them again."""
    if METHODS[method] not in TUNED:
        return method
    from umia.stages.tuning import picked

    spec = picked(checkpoints.tune.get().output[0], METHODS[method])
    return f"{method}/tuned-{plugins.method_id(spec)}"


def display_labels():
    """Each method entry's display name in figures: the config's ``labels``, else a plug-in's declared
    label (its tuned or overridden entries too), else none (the registry's names are the default)."""
    out = {}
    for spec in METHODS.values():
        name, _ = parse_method(spec)
        if plugins.is_plugin(name):
            label = plugins.load_method(name)[1].label
            if label:
                out[plugins.split_ref(name)[1]] = label
    return {**out, **config["labels"]}


def needs_retrain_scores(spec):
    name, _ = parse_method(spec)
    if plugins.is_plugin(name):
        return plugins.load_method(name)[1].needs_retrain_scores
    return registry.METHODS[name].needs_retrain_scores


def shards(scope, unlearning=False):
    """The shard numbers of the scope's training jobs, or of its unlearning jobs."""
    return range(scope["n_models"] // scope["unlearn_shard_size" if unlearning else "shard_size"])


def retrain_scores(scope=STUDY):
    """The retrain models' scores, for the methods that stop on the retrain mean of each example."""

    def files(wildcards):
        if not needs_retrain_scores(scope["specs"][wildcards.method]):
            return []
        return [f"{scope['prefix']}/shards/retrain/retrain/shard-{s:03d}.parquet" for s in shards(scope)]

    return files


def shard_files(table, scope=STUDY, part="all"):
    """Every shard file of ``table`` (scores, lm_stats, trajectory) of the scope's N and methods,
    as an input function; ``part`` "trained" (the originals' and retrains', a plain list) or
    "unlearned" for half of them. A rule lists the two halves as two inputs, so the trainings are scheduled at once
    while the study's tuned entries' paths wait for the tuning checkpoint."""

    def files(wildcards):
        p = scope["prefix"]
        stages = []
        if part in ("all", "trained") and table != "trajectory":
            stages += [("original", "none", False), ("retrain", "retrain", False)]
        if part in ("all", "unlearned"):
            stages += [("unlearned", study_dir(m) if scope is STUDY else m, True) for m in scope["specs"]]
        if table == "trajectory":
            return [f"{p}/shards/trajectory/{m}/shard-{s:03d}.parquet" for _, m, u in stages for s in shards(scope, u)]
        folder = "" if table == "scores" else "lmstats/"
        return [f"{p}/shards/{folder}{st}/{m}/shard-{s:03d}.parquet" for st, m, u in stages for s in shards(scope, u)]

    # the trained half needs no checkpoint: a plain list (an input function after the unlearned
    # half's would reset the rule's "waits for the tuning checkpoint" flag in Snakemake)
    return files(None) if part == "trained" else files


def hold_results_folder():
    """One run at a time on the results folder (umia.runtime.runlock), for the whole run; and a
    cluster run's GPUs left to its scheduler."""
    leave_gpus_to_the_cluster()
    if workflow.is_main_process:
        try:
            runlock.acquire(R)
        except runlock.RunLocked as e:
            sys.exit(f"umia: {e}")
        study.stamp(R, config)


def release_results_folder():
    if workflow.is_main_process:
        runlock.release(R)


def print_verdict():
    """The end of a run in the terminal (umia.report.verdict), when the run made the summary: the
    controls' verdict, the answer per method, and where the report page is."""
    summary = Path(f"{R}/tables/summary.csv")
    if workflow.is_main_process and summary.is_file():
        from umia.report import verdict

        print(verdict.terminal(str(summary)))
        utility = Path(f"{R}/tables/utility.csv")
        print(verdict.answer(str(summary), str(utility) if utility.is_file() else None))
        page = Path(f"{R}/report/summary.html")
        if page.is_file():
            print(f"report: {page}")


def final_outputs():
    """Every output docs/results.md lists as the contract, so a missing or removed one is rebuilt from
    what exists by a plain `snakemake`."""
    return [
        MEMBERSHIP,
        CANDIDATES,
        EXAMPLES,
        SCORES,
        *([LM_STATS] if TEXT else []),
        *([TRAJECTORY, RATES, REACH] if METHODS else []),
        *([TUNING_TABLE] if TUNED else []),
        f"{R}/tables/summary.csv",
        f"{R}/tables/per_example.parquet",
        f"{R}/tables/roc.parquet",
        f"{R}/tables/utility.csv",
        f"{R}/tables/efficiency.csv",
        f"{R}/tables/findings.csv",
        f"{R}/report/summary.html",
        *[f"{R}/figures/{f}.{e}" for f in figure_names() for e in ("png", "pdf")],
    ]
