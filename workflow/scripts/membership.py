from umia.runtime.logs import setup_logging
from umia.stages.prepare import write_membership

setup_logging(snakemake.log[0])
write_membership(
    data=snakemake.input.data, candidates=snakemake.input.candidates, out=snakemake.output[0], **snakemake.params
)
