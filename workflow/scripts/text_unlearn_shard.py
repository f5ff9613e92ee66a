from umia.faults import maybe_fail
from umia.logs import setup_logging
from umia.textjobs import unlearn_text_shard

setup_logging(snakemake.log[0])
maybe_fail(snakemake.rule, dict(snakemake.wildcards.items()), snakemake.resources.umia_attempt)
unlearn_text_shard(
    data=snakemake.input.data,
    candidates=snakemake.input.candidates,
    originals=snakemake.input.originals,
    out_scores=snakemake.output.scores,
    out_lm_stats=snakemake.output.lm_stats,
    out_ckpt=snakemake.output.get("ckpt"),
    out_trajectory=snakemake.output.trajectory,
    shard=int(snakemake.wildcards.shard),
    threads=snakemake.threads,
    device=snakemake.config["device"],
    **snakemake.params.job,
    **snakemake.params.text,
)
