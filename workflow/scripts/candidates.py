from umia.logs import setup_logging
from umia.pipeline import write_candidates

setup_logging(snakemake.log[0])
write_candidates(data=snakemake.input.data, out=snakemake.output[0], **snakemake.params)
