"""One training job: validate cells, train their replicas in one batch, write one file per cell.

This is the function the Snakemake rule, the ``lazyphase train-cell`` command and notebooks
call; it runs without Snakemake.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .config import validate_cell
from .device import lease
from .store import write_cell
from .train import train_replicas

log = logging.getLogger("lazyphase.jobs")


def set_threads(threads: int) -> None:
    """Pin torch's intra-op pool to ``threads`` and its inter-op pool to 1 (once per process)."""
    torch.set_num_threads(max(int(threads), 1))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def train_cells(
    cells: Sequence[Mapping[str, Any]],
    outs: Sequence[str],
    *,
    threads: int = 1,
    gpus: int = 0,
    log_every: float = 10.0,
) -> list[str]:
    """Train every replica of ``cells`` in one batch and write ``outs[i]`` for ``cells[i]``.

    Returns the per-cell status summaries (one line each).
    """
    if len(cells) != len(outs):
        raise ValueError(f"{len(cells)} cells but {len(outs)} output paths")
    valid = [validate_cell(c, where=f"{o}: ") for c, o in zip(cells, outs)]
    set_threads(threads)
    start = time.perf_counter()
    with lease(gpus) as device:
        run = train_replicas(valid, device=device, log_every=log_every)
    lines = []
    offset = 0
    for cell, out in zip(valid, outs):
        idx = list(range(offset, offset + len(cell["seeds"])))
        offset += len(idx)
        write_cell(out, run, idx, cell)
        st = [run.result.status[i] for i in idx]
        lines.append(
            f"{out}: m={cell['m']} L={cell['depth']} s={cell['s']} {cell['activation']} "
            f"replicas={len(idx)} " + " ".join(f"{k}={st.count(k)}" for k in sorted(set(st)))
        )
    log.info(
        "trained %d replicas of %d cells on %s in %.1fs (training %.1fs)",
        len(run.replicas), len(cells), device, time.perf_counter() - start, run.result.seconds,
    )  # fmt: skip
    return lines
