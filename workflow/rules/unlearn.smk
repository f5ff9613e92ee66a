# U_i = m(O_i, F_i, D_i minus F_i) for each configured method m, unlearn_shard_size models per job.


rule unlearn:
    input:
        data=DATA,
        candidates=CANDIDATES,
        originals=originals(),
        retrain_scores=retrain_scores(),
        base=base_input(),
        plugin=method_source(),
    output:
        **model_outputs("unlearned", "{method}", KEEP),
        trajectory=f"{R}/shards/trajectory/{{method}}/shard-{{shard}}.parquet",
    params:
        job=unlearn_params(),
    threads: MODEL_THREADS
    resources:
        gpu=GPUS,
        umia_attempt=attempt_number,
    log:
        f"{R}/logs/unlearn/{{method}}-shard-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/unlearn/{{method}}-shard-{{shard}}.tsv"
    script:
        "../scripts/unlearn_shard.py"


# A tuned entry at the setting tuning picked (rules/tune.smk): the same job, on a path of its own.
use rule unlearn as unlearn_tuned with:
    output:
        **model_outputs("unlearned", "{method}/tuned-{setting}", KEEP),
        trajectory=f"{R}/shards/trajectory/{{method}}/tuned-{{setting}}/shard-{{shard}}.parquet",
    params:
        job=unlearn_params(STUDY, tuned=True),
    log:
        f"{R}/logs/unlearn/{{method}}-tuned-{{setting}}-shard-{{shard}}.log",
    benchmark:
        f"{R}/benchmarks/unlearn/{{method}}-tuned-{{setting}}-shard-{{shard}}.tsv"
