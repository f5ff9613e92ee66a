# The findings figures of a text experiment. plots.protected_examples draws the examples as
# images, and reviews have none: until it shows reviews it gets no examples, and its (empty)
# figure is not an output, nor is per_example_stop's (an image method): figures.smk, TEXT_SKIPPED_FIGURES.
import tempfile
from pathlib import Path

import pandas as pd

from umia.logs import setup_logging
from umia.plots import figures

setup_logging(snakemake.log[0])
out_dir = Path(snakemake.output[0]).parent
with tempfile.TemporaryDirectory() as tmp:
    no_examples = Path(tmp) / "examples.parquet"
    pd.read_parquet(snakemake.input.examples).iloc[:0].to_parquet(no_examples)
    figures(
        summary=snakemake.input.summary,
        per_example=snakemake.input.per_example,
        roc_table=snakemake.input.roc,
        examples=str(no_examples),
        rates_table=snakemake.input.rates or None,
        reach_table=snakemake.input.reach or None,
        out_dir=str(out_dir),
        out_findings=snakemake.output.findings,
    )
for name in ("protected_examples", "per_example_stop"):
    for ext in ("png", "pdf"):
        (out_dir / f"{name}.{ext}").unlink(missing_ok=True)
