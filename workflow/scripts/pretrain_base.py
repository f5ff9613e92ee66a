from umia.logs import setup_logging
from umia.tasks.text import pretrain

setup_logging(snakemake.log[0])
pretrain(
    corpus=snakemake.input.data,
    out=snakemake.output[0],
    lm_settings=snakemake.params.lm,
    max_tokens=snakemake.params.max_tokens,
    seed=snakemake.params.seed,
    device=snakemake.config["device"],
    threads=snakemake.threads,
)
