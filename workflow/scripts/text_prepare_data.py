from umia.logs import setup_logging
from umia.textjobs import prepare_corpus

setup_logging(snakemake.log[0])
# where the reviews come from (path, sha256) is read from the config; what defines them from params
dataset = {**snakemake.config["dataset"], **snakemake.params.dataset}
prepare_corpus(dataset, seed=snakemake.params.seed, out=snakemake.output[0])
