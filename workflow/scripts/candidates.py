from umia.runtime.logs import setup_logging
from umia.stages.prepare import write_candidates

setup_logging(snakemake.log[0])
write_candidates(data=snakemake.input.data, out=snakemake.output[0], **snakemake.params)
