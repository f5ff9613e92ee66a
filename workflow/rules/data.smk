rule prepare_data:
    output:
        DATA,
    params:
        dataset=data_params(),
        seed=config["seed"],
    log:
        f"{R}/logs/prepare_data.log",
    benchmark:
        f"{R}/benchmarks/prepare_data.tsv"
    script:
        "../scripts/prepare_data.py"


rule candidates:
    input:
        data=DATA,
    output:
        CANDIDATES,
    params:
        candidates=config["candidates"],
        seed=config["seed"],
        config_hash=HASH,
        task=TASK,
    log:
        f"{R}/logs/candidates.log",
    benchmark:
        f"{R}/benchmarks/candidates.tsv"
    script:
        "../scripts/candidates.py"


rule membership:
    input:
        data=DATA,
        candidates=CANDIDATES,
    output:
        MEMBERSHIP,
    params:
        n_models=config["n_models"],
        seed=config["seed"],
        config_hash=HASH,
        task=TASK,
    log:
        f"{R}/logs/membership.log",
    benchmark:
        f"{R}/benchmarks/membership.tsv"
    script:
        "../scripts/membership.py"


rule examples:
    input:
        data=DATA,
        candidates=CANDIDATES,
    output:
        EXAMPLES,
    params:
        dataset=config["dataset"]["name"],
        config_hash=HASH,
    log:
        f"{R}/logs/examples.log",
    benchmark:
        f"{R}/benchmarks/examples.tsv"
    script:
        "../scripts/examples.py"
