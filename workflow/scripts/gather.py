from umia import io
from umia.logs import setup_logging
from umia.pipeline import gather

setup_logging(snakemake.log[0])
schema = io.TRAJECTORY if snakemake.rule == "gather_trajectory" else io.SCORES
gather(parts=list(snakemake.input), out=snakemake.output[0], config_hash=snakemake.params.config_hash, schema=schema)
