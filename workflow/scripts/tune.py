from umia.runtime.logs import setup_logging
from umia.stages.tuning import tuning_table

setup_logging(snakemake.log[0])
tuning_table(
    summary=snakemake.input.summary, utility=snakemake.input.utility, out=snakemake.output[0], **snakemake.params
)
