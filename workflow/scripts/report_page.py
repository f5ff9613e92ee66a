import pyarrow.parquet as pq

from umia.report.page import summary_page
from umia.runtime.logs import setup_logging

setup_logging(snakemake.log[0])
summary_page(
    summary=snakemake.input.summary,
    findings=snakemake.input.findings,
    scores=snakemake.input.scores,
    config=snakemake.config,
    out=snakemake.output[0],
    workflow_dir=snakemake.scriptdir,
    n_candidates=pq.read_metadata(snakemake.input.candidates).num_rows,
    utility=snakemake.input.utility,
    tuning=snakemake.input.tuning or None,
    efficiency=snakemake.input.efficiency or None,
)
