# The text task's own rules: the base model (tokenizer and GPT-2-style model pretrained from
# scratch on reviews disjoint from the membership pool), and the gather of the LM statistics.
# Run only for a text dataset (dataset.name: imdb); with lm.base_model set, pretrain_base is skipped.


rule pretrain_base:
    input:
        data=DATA,
    output:
        # save_pretrained's folder: model.safetensors, config.json, the tokenizer, umia.json
        directory(f"{R}/base"),
    params:
        lm={k: v for k, v in config["lm"].items() if k not in ("base_model", "min_k")},
        max_tokens=config["dataset"]["max_tokens"],
        seed=config["seed"],
    threads: MODEL_THREADS
    resources:
        gpu=GPUS,
    log:
        f"{R}/logs/pretrain_base.log",
    benchmark:
        f"{R}/benchmarks/pretrain_base.tsv"
    script:
        "../scripts/pretrain_base.py"


rule gather_lm_stats:
    input:
        shard_files("lm_stats", part="trained"),
        shard_files("lm_stats", part="unlearned"),
    output:
        LM_STATS,
    params:
        config_hash=HASH,
        table="lm_stats",
    log:
        f"{R}/logs/gather_lm_stats.log",
    benchmark:
        f"{R}/benchmarks/gather_lm_stats.tsv"
    script:
        "../scripts/gather.py"
