from umia.runtime.logs import setup_logging
from umia.stages.prepare import prepare_data

setup_logging(snakemake.log[0])
# where the data comes from is read from the config; what defines it from params (rerun triggers)
dataset = {**snakemake.config["dataset"], **snakemake.params.dataset}
prepare_data(dataset, seed=snakemake.params.seed, out=snakemake.output[0])
