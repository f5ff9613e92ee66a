from umia import gpus
from umia.faults import maybe_fail
from umia.logs import setup_logging

setup_logging(snakemake.log[0])
gpus.claim()  # a slot of a GPU of its own in a local run, before CUDA starts
maybe_fail(snakemake.rule, dict(snakemake.wildcards.items()), snakemake.resources.umia_attempt)

from umia.jobs import unlearn_shard  # noqa: E402  (torch after the slot's CUDA_VISIBLE_DEVICES)

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
