"""Snakemake shim of rule target_precision: seeds (and widths) in rounds until every interval
meets the experiment's target_ci_width or a cap is reached."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.budget import resources_budget  # noqa: E402
from lazyphase.pipeline.steps import target_precision  # noqa: E402

target_precision(
    sm.params.study,
    sm.params.cells,
    sm.input.runs,
    sm.output.runs,
    sm.output.table,
    sm.wildcards.experiment,
    dict(sm.params.target),
    refine_dir=sm.input.refine or None,
    n_boot=sm.params.n_boot,
    ci=sm.params.ci,
    dataset=sm.input.dataset,
    threads=sm.threads,
    gpus=int(sm.resources.get("gpu", 0)),
    budget=resources_budget(sm.resources),
)
