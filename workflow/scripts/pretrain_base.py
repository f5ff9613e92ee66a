from umia.runtime.job import start

start(snakemake.log[0])  # the log, and a slot of a GPU of its own in a local run, before CUDA starts

from umia.tasks.text.task import pretrain  # noqa: E402  (torch after the slot's CUDA_VISIBLE_DEVICES)

pretrain(
    corpus=snakemake.input.data,
    out=snakemake.output[0],
    lm_settings=snakemake.params.lm,
    max_tokens=snakemake.params.max_tokens,
    seed=snakemake.params.seed,
    device=snakemake.config["device"],
    threads=snakemake.threads,
)
