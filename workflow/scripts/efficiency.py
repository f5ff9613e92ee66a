from umia.runtime.logs import setup_logging
from umia.stages.efficiency import efficiency_table

setup_logging(snakemake.log[0])
efficiency_table(
    scores=snakemake.input.scores,
    membership=snakemake.input.membership,
    out=snakemake.output[0],
    lm_stats=snakemake.input.lm_stats or None,
    threads=snakemake.threads,
    **snakemake.params,
)
