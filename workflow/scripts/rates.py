from umia.runtime.logs import setup_logging
from umia.stages.rates import rate_files

setup_logging(snakemake.log[0])
rate_files(
    trajectory=snakemake.input.trajectory,
    scores=snakemake.input.scores,
    out_rates=snakemake.output.rates,
    out_reach=snakemake.output.reach,
    config_hash=snakemake.params.config_hash,
)
