from umia.logs import setup_logging
from umia.unlearn import unlearn_shard

setup_logging(snakemake.log[0])
unlearn_shard(
    data=snakemake.input.data,
    candidates=snakemake.input.candidates,
    originals=snakemake.input.originals,
    out_scores=snakemake.output.scores,
    out_ckpt=snakemake.output.get("ckpt"),
    shard=int(snakemake.wildcards.shard),
    threads=snakemake.threads,
    **snakemake.params.job,
)
