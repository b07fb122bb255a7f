"""Snakemake shim of rule train_cell: one batch of cells, one run file per cell."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

import logging  # noqa: E402
import sys  # noqa: E402

from lazyphase.pipeline.budget import Budget  # noqa: E402
from lazyphase.pipeline.jobs import (  # noqa: E402
    CHECKPOINT_EVERY_MIN,
    TrainingInterrupted,
    checkpoint_path,
    train_cells,
)

res = sm.resources
budget = Budget(mem_mb=int(res.get("budget_mem_mb", res.get("mem_mb", 16000))),
                device_mem_mb=int(res.get("device_mem_mb", 0)))  # fmt: skip
# read from the config, not params: the interval changes no result and must not rerun jobs
exp = sm.config["experiments"][sm.wildcards.experiment]
try:
    lines = train_cells(
        sm.params.cells,
        sm.params.outs,
        threads=sm.threads,
        gpus=int(sm.resources.get("gpu", 0)),
        dataset=sm.input.dataset,
        mem_mb=sm.resources.get("mem_mb"),
        budget=budget,
        checkpoint=checkpoint_path(sm.wildcards.experiment, sm.wildcards.batch),
        checkpoint_every=float(exp.get("checkpoint_every", CHECKPOINT_EVERY_MIN)),
    )
except TrainingInterrupted as exc:
    logging.getLogger("lazyphase.jobs").warning("%s", exc)
    sys.exit(128 + exc.signum if exc.signum else 1)
for line in lines:
    logging.getLogger("lazyphase.jobs").info("summary %s", line)
