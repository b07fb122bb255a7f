"""Snakemake shim of rule aggregate_deep_phase: every layer's exponent and boundary (B2)."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.steps import aggregate_deep_phase  # noqa: E402

aggregate_deep_phase(
    sm.input.runs,
    sm.input.refine,
    dict(sm.output.items()),
    n_boot=sm.params.n_boot,
    ci=sm.params.ci,
    r2_min=sm.params.r2_min,
)
