from pathlib import Path

from umia.logs import setup_logging
from umia.plots import figures

setup_logging(snakemake.log[0])
figures(
    summary=snakemake.input.summary,
    per_example=snakemake.input.per_example,
    out_dir=str(Path(snakemake.output[0]).parent),
)
