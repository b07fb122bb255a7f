"""Snakemake shim of rule refine_phase_boundary: bisection rounds in gamma (B1)."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.steps import refine_phase  # noqa: E402

refine_phase(
    sm.params.cells,
    sm.input.runs,
    sm.output[0],
    sm.wildcards.experiment,
    tol=sm.params.tol,
    rounds=sm.params.rounds,
    dataset=sm.input.dataset,
    threads=sm.threads,
)
