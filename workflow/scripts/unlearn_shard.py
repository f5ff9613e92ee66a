from umia.faults import maybe_fail
from umia.jobs import unlearn_shard
from umia.logs import setup_logging

setup_logging(snakemake.log[0])
maybe_fail(snakemake.rule, dict(snakemake.wildcards.items()), snakemake.resources.umia_attempt)
unlearn_shard(
    data=snakemake.input.data,
    candidates=snakemake.input.candidates,
    originals=snakemake.input.originals,
    outputs=dict(snakemake.output.items()),
    retrain_scores=list(snakemake.input.retrain_scores),
    shard=int(snakemake.wildcards.shard),
    threads=snakemake.threads,
    device=snakemake.config["device"],
    **snakemake.params.job,
)
