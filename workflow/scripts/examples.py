from umia.logs import setup_logging
from umia.pipeline import write_examples

setup_logging(snakemake.log[0])
write_examples(
    data=snakemake.input.data,
    candidates=snakemake.input.candidates,
    out=snakemake.output[0],
    dataset=snakemake.params.dataset,
    config_hash=snakemake.params.config_hash,
)
