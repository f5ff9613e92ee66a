# Figures and the report page need only the tables: rebuild them alone (seconds, no GPU) with
#   snakemake --workflow-profile profiles/default --forcerun findings figures report_page
# and the self-contained report with
#   snakemake --workflow-profile profiles/default --report results/<experiment>/report.html


from umia import registry

# figure (its caption: workflow/report/<name>.rst) -> spec, with its report category
FIGURES = registry.FIGURES


def method_names():
    """The configured methods' names without their overrides (``neggrad_plus@alpha=0.5`` is
    ``neggrad_plus``; a plug-in, ``path/to/ssd.py:ssd``, keeps its reference)."""
    return list(dict.fromkeys(parse_method(m)[0] for m in config["methods"]))


def figure_names():
    """The figures this experiment draws: those whose task, methods and data it has."""
    return registry.figure_names(TASK, method_names())


def figure_outputs():
    """Each figure's PNG (in the report, with its caption) and PDF (for papers)."""
    out = {}
    for name in figure_names():
        out[f"{name}_png"] = report(
            f"{R}/figures/{name}.png",
            caption=f"../report/{name}.rst",
            category=FIGURES[name].category,
        )
        out[f"{name}_pdf"] = f"{R}/figures/{name}.pdf"
    return out


rule findings:
    input:
        per_example=f"{R}/tables/per_example.parquet",
        reach=REACH if config["methods"] else [],
    output:
        f"{R}/tables/findings.csv",
    log:
        f"{R}/logs/findings.log",
    benchmark:
        f"{R}/benchmarks/findings.tsv"
    script:
        "../scripts/findings.py"


rule figures:
    input:
        summary=f"{R}/tables/summary.csv",
        per_example=f"{R}/tables/per_example.parquet",
        roc=f"{R}/tables/roc.parquet",
        examples=EXAMPLES,
        rates=RATES if config["methods"] else [],
        reach=REACH if config["methods"] else [],
        utility=f"{R}/tables/utility.csv",
        tuning=TUNING_TABLE if TUNED else [],
        efficiency=f"{R}/tables/efficiency.csv",
    output:
        **figure_outputs(),
    log:
        f"{R}/logs/figures.log",
    benchmark:
        f"{R}/benchmarks/figures.tsv"
    params:
        names=figure_names(),
        task="text" if TEXT else "image",
        labels=display_labels(),
    script:
        "../scripts/figures.py"


rule report_page:
    input:
        summary=f"{R}/tables/summary.csv",
        findings=f"{R}/tables/findings.csv",
        scores=SCORES,
        candidates=CANDIDATES,
        utility=f"{R}/tables/utility.csv",
        tuning=TUNING_TABLE if TUNED else [],
        efficiency=f"{R}/tables/efficiency.csv",
    output:
        report(
            f"{R}/report/summary.html",
            caption="../report/summary.rst",
            category="0. Summary and provenance",
        ),
    log:
        f"{R}/logs/report_page.log",
    benchmark:
        f"{R}/benchmarks/report_page.tsv"
    script:
        "../scripts/report_page.py"
