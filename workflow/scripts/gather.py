from umia import io
from umia.runtime.logs import setup_logging
from umia.stages.gather import gather

setup_logging(snakemake.log[0])
gather(
    parts=list(snakemake.input),
    out=snakemake.output[0],
    config_hash=snakemake.params.config_hash,
    schema=io.TABLES[snakemake.params.table],
)
