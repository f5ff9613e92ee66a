from umia.data import prepare
from umia.logs import setup_logging

setup_logging(snakemake.log[0])
prepare(snakemake.params.dataset, seed=snakemake.params.seed, out=snakemake.output[0])
