# Figures and the report page need only the tables: rebuild them alone (seconds, no GPU) with
#   snakemake --workflow-profile profiles/default --forcerun figures report_page
# and the self-contained report with
#   snakemake --workflow-profile profiles/default --report results/<experiment>/report.html


FIGURES = {  # figure (and its caption, workflow/report/<name>.rst): report category
    "attack_accuracy": "1. Population vs per-example",
    "roc": "1. Population vs per-example",
    "per_example_accuracy": "2. Variance across examples",
    "protected_examples": "2. Variance across examples",
    "before_after": "3. Lower for some, higher for others",
    "retained_change": "4. Retained examples",
    "rates": "5. Rates of unlearning",
    "reach": "5. Rates of unlearning",
    "per_example_stop": "6. Per-example stopping",
}
RATE_FIGURES = ("rates", "reach", "per_example_stop")  # drawn only when some method unlearns
# not drawn for text: per_example_stop is an image method
TEXT_SKIPPED_FIGURES = ("per_example_stop",)


def figure_names():
    """The figures this experiment draws."""
    skip = (RATE_FIGURES if not config["methods"] else ()) + (TEXT_SKIPPED_FIGURES if TEXT else ())
    return [name for name in FIGURES if name not in skip]


def figure_outputs():
    """Each figure's PNG (in the report, with its caption) and PDF (for papers)."""
    out = {}
    for name, category in FIGURES.items():
        if name not in figure_names():
            continue
        out[f"{name}_png"] = report(f"{R}/figures/{name}.png", caption=f"../report/{name}.rst", category=category)
        out[f"{name}_pdf"] = f"{R}/figures/{name}.pdf"
    return out


rule figures:
    input:
        summary=f"{R}/tables/summary.csv",
        per_example=f"{R}/tables/per_example.parquet",
        roc=f"{R}/tables/roc.parquet",
        examples=EXAMPLES,
        rates=RATES if config["methods"] else [],
        reach=REACH if config["methods"] else [],
    output:
        **figure_outputs(),
        findings=f"{R}/tables/findings.csv",
    params:
        skip=[name for name in FIGURES if name not in figure_names()],
    log:
        f"{R}/logs/figures.log",
    benchmark:
        f"{R}/benchmarks/figures.tsv"
    script:
        "../scripts/figures.py"


rule report_page:
    input:
        summary=f"{R}/tables/summary.csv",
        findings=f"{R}/tables/findings.csv",
        scores=SCORES,
        candidates=CANDIDATES,
    output:
        report(f"{R}/report/summary.html", caption="../report/summary.rst", category="0. Summary and provenance"),
    log:
        f"{R}/logs/report_page.log",
    benchmark:
        f"{R}/benchmarks/report_page.tsv"
    script:
        "../scripts/report_page.py"
