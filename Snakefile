# lazyphase: the lazy / feature-learning phase map as a reproducible workflow.
# Usage: snakemake --cores 2            (config.yaml; see README.md)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/gram_concentration.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/phase.smk"
include: "workflow/rules/deep_phase.smk"
include: "workflow/rules/chizat.smk"
include: "workflow/rules/manifest.smk"


rule all:
    default_target: True
    input:
        all_targets(),
    localrule: True
