from pathlib import Path

from umia.report.figures import figures
from umia.runtime.logs import setup_logging

setup_logging(snakemake.log[0])
figures(
    summary=snakemake.input.summary,
    per_example=snakemake.input.per_example,
    roc_table=snakemake.input.roc,
    examples=snakemake.input.examples,
    rates_table=snakemake.input.rates or None,
    reach_table=snakemake.input.reach or None,
    utility_table=snakemake.input.utility,
    tuning_table=snakemake.input.tuning or None,
    efficiency_table=snakemake.input.efficiency or None,
    out_dir=str(Path(snakemake.output[0]).parent),
    names=snakemake.params.names,
    task=snakemake.params.task,
    labels=snakemake.params.labels,
)
