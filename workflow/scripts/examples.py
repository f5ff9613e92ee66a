from umia.runtime.logs import setup_logging
from umia.stages.prepare import write_examples

setup_logging(snakemake.log[0])
write_examples(
    data=snakemake.input.data,
    candidates=snakemake.input.candidates,
    out=snakemake.output[0],
    dataset=snakemake.params.dataset,
    config_hash=snakemake.params.config_hash,
)
