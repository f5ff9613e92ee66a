from umia.runtime.job import start

# the log, a GPU slot of its own in a local run (before CUDA starts), an injected fault in the fault tests
start(snakemake.log[0], snakemake.rule, snakemake.wildcards, snakemake.resources.umia_attempt)

from umia.stages.shards import unlearn_shard  # noqa: E402  (torch after the slot's CUDA_VISIBLE_DEVICES)

unlearn_shard(
    data=snakemake.input.data,
    candidates=snakemake.input.candidates,
    originals=list(snakemake.input.originals),
    outputs=dict(snakemake.output.items()),
    retrain_scores=list(snakemake.input.retrain_scores),
    shard=int(snakemake.wildcards.shard),
    threads=snakemake.threads,
    device=snakemake.config["device"],
    **snakemake.params.job,
)
