# Originals O_i (on D_i) and retrains R_i (on D_i minus F_i), K models per job, scored in the job.


rule train_original:
    input:
        data=DATA,
        candidates=CANDIDATES,
        base=base_input(),
        plugin=network_source(),
    output:
        # the checkpoint is always kept: unlearning needs it, and a method added later reuses it
        **model_outputs("original", "none", True),
    params:
        job=shard_job("original"),
    threads: MODEL_THREADS
    resources:
        gpu=GPUS,
        umia_attempt=attempt_number,
    log:
        f"{R}/logs/train/original-shard-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/train/original-shard-{{shard}}.tsv"
    script:
        "../scripts/train_shard.py"


rule train_retrain:
    input:
        data=DATA,
        candidates=CANDIDATES,
        base=base_input(),
        plugin=network_source(),
    output:
        **model_outputs("retrain", "retrain", KEEP),
    params:
        job=shard_job("retrain"),
    threads: MODEL_THREADS
    resources:
        gpu=GPUS,
        umia_attempt=attempt_number,
    log:
        f"{R}/logs/train/retrain-shard-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/train/retrain-shard-{{shard}}.tsv"
    script:
        "../scripts/train_shard.py"
