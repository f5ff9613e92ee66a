# The tuning stage: every setting of the `tune` grids applied to tuning models of their own seed
# and ids (results/<experiment>/tuning/), attacked and measured by the study's own rules, and the
# pick per method (checkpoint tune -> tables/tuning.csv). Only a config with `tune` runs it.


use rule membership as tune_membership with:
    output:
        f"{T}/plan/membership.parquet",
    params:
        n_models=TUNE["n_models"],
        seed=TUNE["seed"],
        config_hash=HASH,
        task=TASK,
    log:
        f"{T}/logs/membership.log",
    benchmark:
        f"{T}/benchmarks/membership.tsv"


use rule train_original as tune_train_original with:
    # first: the study's unlearning waits for the pick; the study's trainings fill the other slots
    priority: 1
    output:
        **model_outputs("original", "none", True, T),
    params:
        job=shard_job("original", TUNE),
    log:
        f"{T}/logs/train/original-shard-{{shard}}.log",
    benchmark:
        f"{T}/benchmarks/train/original-shard-{{shard}}.tsv"


use rule train_retrain as tune_train_retrain with:
    priority: 1
    output:
        # the tuning retrains' checkpoints are never needed again: scores only
        **model_outputs("retrain", "retrain", False, T),
    params:
        job=shard_job("retrain", TUNE),
    log:
        f"{T}/logs/train/retrain-shard-{{shard}}.log",
    benchmark:
        f"{T}/benchmarks/train/retrain-shard-{{shard}}.tsv"


use rule unlearn as tune_unlearn with:
    priority: 1
    input:
        data=DATA,
        candidates=CANDIDATES,
        originals=originals(TUNE),
        retrain_scores=retrain_scores(TUNE),
        base=base_input(),
        plugin=method_source(TUNE),
    output:
        **model_outputs("unlearned", "{method}", False, T),
        trajectory=f"{T}/shards/trajectory/{{method}}/shard-{{shard}}.parquet",
    params:
        job=unlearn_params(TUNE),
    log:
        f"{T}/logs/unlearn/{{method}}-shard-{{shard}}.log",
    benchmark:
        f"{T}/benchmarks/unlearn/{{method}}-shard-{{shard}}.tsv"


use rule gather as tune_gather with:
    input:
        shard_files("scores", TUNE),
    output:
        f"{T}/scores/scores.parquet",
    log:
        f"{T}/logs/gather.log",
    benchmark:
        f"{T}/benchmarks/gather.tsv"


use rule gather_lm_stats as tune_gather_lm_stats with:
    input:
        shard_files("lm_stats", TUNE),
    output:
        f"{T}/lm_stats/lm_stats.parquet",
    log:
        f"{T}/logs/gather_lm_stats.log",
    benchmark:
        f"{T}/benchmarks/gather_lm_stats.tsv"


use rule attacks as tune_attacks with:
    input:
        scores=f"{T}/scores/scores.parquet",
        membership=f"{T}/plan/membership.parquet",
        lm_stats=f"{T}/lm_stats/lm_stats.parquet" if TEXT else [],
    output:
        summary=f"{T}/tables/summary.csv",
        per_example=f"{T}/tables/per_example.parquet",
        roc=f"{T}/tables/roc.parquet",
        utility=f"{T}/tables/utility.csv",
    params:
        methods=list(TUNE_SPECS),
        n_folds=min(config["attacks"]["n_folds"], TUNE["n_models"] // 2),
        loss_cv_folds=config["attacks"]["loss_cv_folds"],
        n_bootstrap=config["tuning"]["n_bootstrap"],
        seed=config["seed"],
        config_hash=HASH,
        # the pick reads no attack's challenge epsilon: skipped, most of this step's time
        attack_epsilons=False,
    log:
        f"{T}/logs/attacks.log",
    benchmark:
        f"{T}/benchmarks/attacks.tsv"


checkpoint tune:
    input:
        summary=f"{T}/tables/summary.csv",
        utility=f"{T}/tables/utility.csv",
    output:
        TUNING_TABLE,
    params:
        grids=tuning_grids(config),
        rule=config["tuning"]["rule"],
        max_test_drop=config["tuning"]["max_test_drop"],
    log:
        f"{R}/logs/tune.log",
    benchmark:
        f"{R}/benchmarks/tune.tsv"
    script:
        "../scripts/tune.py"
