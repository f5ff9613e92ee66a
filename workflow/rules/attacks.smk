rule gather:
    input:
        shard_files("scores", part="trained"),
        shard_files("scores", part="unlearned"),
    output:
        SCORES,
    params:
        config_hash=HASH,
        table="scores",
    log:
        f"{R}/logs/gather.log",
    benchmark:
        f"{R}/benchmarks/gather.tsv"
    script:
        "../scripts/gather.py"


rule gather_trajectory:
    input:
        shard_files("trajectory"),
    output:
        TRAJECTORY,
    params:
        config_hash=HASH,
        table="trajectory",
    log:
        f"{R}/logs/gather_trajectory.log",
    benchmark:
        f"{R}/benchmarks/gather_trajectory.tsv"
    script:
        "../scripts/gather.py"


rule rates:
    input:
        trajectory=TRAJECTORY,
        scores=SCORES,
    output:
        rates=RATES,
        reach=REACH,
    params:
        config_hash=HASH,
    log:
        f"{R}/logs/rates.log",
    benchmark:
        f"{R}/benchmarks/rates.tsv"
    script:
        "../scripts/rates.py"


rule attacks:
    input:
        scores=SCORES,
        membership=MEMBERSHIP,
        lm_stats=LM_STATS if TEXT else [],
    output:
        summary=f"{R}/tables/summary.csv",
        per_example=f"{R}/tables/per_example.parquet",
        roc=f"{R}/tables/roc.parquet",
        utility=f"{R}/tables/utility.csv",
    params:
        methods=list(METHODS),
        n_folds=config["attacks"]["n_folds"],
        loss_cv_folds=config["attacks"]["loss_cv_folds"],
        n_bootstrap=config["attacks"]["n_bootstrap"],
        rmia_a=config["attacks"]["rmia_offline_a"],
        seed=config["seed"],
        config_hash=HASH,
    log:
        f"{R}/logs/attacks.log",
    benchmark:
        f"{R}/benchmarks/attacks.tsv"
    threads: 2  # one method a thread (independent); profiles/default raises it with set-threads
    script:
        "../scripts/attacks.py"


# How many shadow models the study needs: every attack refit on subsets of the models (scores only).
rule efficiency:
    input:
        scores=SCORES,
        membership=MEMBERSHIP,
        lm_stats=LM_STATS if TEXT else [],
    output:
        f"{R}/tables/efficiency.csv",
    params:
        methods=list(METHODS),
        n_folds=config["attacks"]["n_folds"],
        sizes_asked=config["efficiency"]["sizes"],
        repeats=config["efficiency"]["repeats"],
        rmia_a=config["attacks"]["rmia_offline_a"],
        seed=config["seed"],
        config_hash=HASH,
    log:
        f"{R}/logs/efficiency.log",
    benchmark:
        f"{R}/benchmarks/efficiency.tsv"
    threads: 2
    script:
        "../scripts/efficiency.py"
