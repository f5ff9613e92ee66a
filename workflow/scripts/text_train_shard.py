from umia.faults import maybe_fail
from umia.logs import setup_logging
from umia.textjobs import train_text_shard

setup_logging(snakemake.log[0])
maybe_fail(snakemake.rule, dict(snakemake.wildcards.items()), snakemake.resources.umia_attempt)
train_text_shard(
    data=snakemake.input.data,
    candidates=snakemake.input.candidates,
    out_scores=snakemake.output.scores,
    out_lm_stats=snakemake.output.lm_stats,
    out_ckpt=snakemake.output.get("ckpt"),
    stage=snakemake.params.stage,
    shard=int(snakemake.wildcards.shard),
    threads=snakemake.threads,
    device=snakemake.config["device"],
    recipe=snakemake.params.recipe,
    **snakemake.params.job,
    **snakemake.params.text,
)
