# lazyphase at the repository root: `snakemake --cores 2` here runs workflow/Snakefile (the
# Snakemake workflow catalog layout) with config/config.yaml (config.yaml links to it).
include: "workflow/Snakefile"


# an include keeps the including file's default target (none): the workflow's is this one's
workflow.default_target = "all"
