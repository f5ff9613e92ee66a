from umia.logs import setup_logging
from umia.pipeline import write_membership

setup_logging(snakemake.log[0])
write_membership(
    data=snakemake.input.data, candidates=snakemake.input.candidates, out=snakemake.output[0], **snakemake.params
)
