"""Snakemake shim of rule train_cell: one batch of cells, one run file per cell."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

import logging  # noqa: E402

from lazyphase.pipeline.budget import Budget  # noqa: E402
from lazyphase.pipeline.jobs import train_cells  # noqa: E402

res = sm.resources
budget = Budget(mem_mb=int(res.get("budget_mem_mb", res.get("mem_mb", 16000))),
                device_mem_mb=int(res.get("device_mem_mb", 0)))  # fmt: skip

for line in train_cells(
    sm.params.cells,
    sm.params.outs,
    threads=sm.threads,
    gpus=int(sm.resources.get("gpu", 0)),
    dataset=sm.input.dataset,
    mem_mb=sm.resources.get("mem_mb"),
    budget=budget,
):
    logging.getLogger("lazyphase.jobs").info("summary %s", line)
