from umia.runtime.logs import setup_logging
from umia.stages.tables import attack_tables

setup_logging(snakemake.log[0])
attack_tables(
    scores=snakemake.input.scores,
    membership=snakemake.input.membership,
    out_summary=snakemake.output.summary,
    out_per_example=snakemake.output.per_example,
    out_roc=snakemake.output.roc,
    out_utility=snakemake.output.utility,
    lm_stats=snakemake.input.lm_stats or None,  # text: the population zlib and Min-K% attacks
    threads=snakemake.threads,
    **snakemake.params,
)
