"""Snakemake shim of rules aggregate_phase (B1) and aggregate_deep_phase (B2): the phase table
and its boundary from the coarse and bisection runs."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.steps import aggregate_boundary  # noqa: E402

aggregate_boundary(
    sm.params.study,
    sm.input.runs,
    sm.input.refine,
    dict(sm.output.items()),
    n_boot=sm.params.n_boot,
    ci=sm.params.ci,
    r2_min=sm.params.r2_min,
    refine_on=sm.params.refine_on,
    precision_dir=sm.input.get("precision") or None,
)
