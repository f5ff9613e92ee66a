# Figures need only the tables: rerun them alone with
#   snakemake --workflow-profile profiles/default --forcerun figures


rule figures:
    input:
        summary=f"{R}/tables/summary.csv",
        per_example=f"{R}/tables/per_example.parquet",
    output:
        multiext(f"{R}/figures/attack_accuracy", ".png", ".pdf"),
        multiext(f"{R}/figures/per_example_accuracy", ".png", ".pdf"),
    log:
        f"{R}/logs/figures.log",
    script:
        "../scripts/figures.py"
