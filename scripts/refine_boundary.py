"""Snakemake shim of rules refine_phase_boundary (B1, in gamma) and refine_deep_phase_boundary
(B2, in s): bisection rounds after the coarse grid."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.budget import Budget  # noqa: E402
from lazyphase.pipeline.steps import refine_boundary  # noqa: E402

res = sm.resources
budget = Budget(mem_mb=int(res.get("budget_mem_mb", res.get("mem_mb", 16000))),
                device_mem_mb=int(res.get("device_mem_mb", 0)))  # fmt: skip

refine_boundary(
    sm.params.study,
    sm.params.cells,
    sm.input.runs,
    sm.output[0],
    sm.wildcards.experiment,
    tol=sm.params.tol,
    rounds=sm.params.rounds,
    refine_on=sm.params.refine_on,
    dataset=sm.input.dataset,
    threads=sm.threads,
    gpus=int(res.get("gpu", 0)),
    budget=budget,
)
