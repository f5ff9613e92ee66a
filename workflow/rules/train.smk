# Originals O_i (on D_i) and retrains R_i (on D_i minus F_i), K models per job, scored in the job.


rule train_original:
    input:
        data=DATA,
        candidates=CANDIDATES,
        base=base_input(),
    output:
        scores=f"{R}/shards/original/none/shard-{{shard}}.parquet",
        **lm_stats_output("original", "none"),
        # always kept: unlearning needs them, and a method added later reuses them
        ckpt=f"{R}/models/original/none/shard-{{shard}}.pt",
    params:
        stage="original",
        job=shard_job(),
        recipe=config["train"],
        **text_params(),
    threads: MODEL_THREADS
    resources:
        gpu=GPUS,
        umia_attempt=attempt_number,
    log:
        f"{R}/logs/train/original-shard-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/train/original-shard-{{shard}}.tsv"
    script:
        task_script("train_shard")


rule train_retrain:
    input:
        data=DATA,
        candidates=CANDIDATES,
        base=base_input(),
    output:
        **model_outputs("retrain", "retrain", KEEP),
    params:
        stage="retrain",
        job=shard_job(),
        recipe=config["train"],
        **text_params(),
    threads: MODEL_THREADS
    resources:
        gpu=GPUS,
        umia_attempt=attempt_number,
    log:
        f"{R}/logs/train/retrain-shard-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/train/retrain-shard-{{shard}}.tsv"
    script:
        task_script("train_shard")
