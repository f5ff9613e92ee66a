# umia: per-example membership inference attacks on machine unlearning.
# Run `snakemake --workflow-profile profiles/default` (see README.md).
from snakemake.utils import min_version

min_version("9.0")


configfile: f"{workflow.basedir}/config/config.yaml"  # the default study, wherever the run starts


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/text.smk"
include: "workflow/rules/unlearn.smk"
include: "workflow/rules/attacks.smk"
include: "workflow/rules/tune.smk"
include: "workflow/rules/figures.smk"


rule all:
    input:
        final_outputs(),
    default_target: True


onstart:
    hold_results_folder()


onerror:
    release_results_folder()


onsuccess:
    release_results_folder()
    print(
        f"\numia: experiment '{config['experiment']}' finished.\n  tables:  {R}/tables/summary.csv, {R}/tables/per_example.parquet\n  figures: {R}/figures/\n  scores:  {R}/scores/"
    )
    print_verdict()
