from umia.report import findings
from umia.runtime.logs import setup_logging

setup_logging(snakemake.log[0])
findings.write(
    per_example=snakemake.input.per_example,
    reach=snakemake.input.reach or None,
    out=snakemake.output[0],
)
