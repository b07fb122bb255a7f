"""One training job: validate cells, train their replicas in one batch, write one file per cell.

This is the function the Snakemake rule, the ``lazyphase train-cell`` command and notebooks
call; it runs without Snakemake.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch

from lazyphase.cells import validate_cell
from lazyphase.core.model import effective_s
from lazyphase.core.train import Checkpointing, TrainingInterrupted, train_replicas  # noqa: F401
from lazyphase.pipeline.device import job_device
from lazyphase.pipeline.fingerprint import code_fingerprint
from lazyphase.store.runs import read_datasets, write_cell

log = logging.getLogger("lazyphase.jobs")

#: Minutes between the checkpoints of a training job (experiment key ``checkpoint_every``).
CHECKPOINT_EVERY_MIN = 10.0


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
    dataset: str | None = None,
    mem_mb: int | None = None,
    checkpoint: str | None = None,
    checkpoint_every: float = CHECKPOINT_EVERY_MIN,
    stop_at: int | None = None,
) -> list[str]:
    """Train every replica of ``cells`` in one batch and write ``outs[i]`` for ``cells[i]``.

    ``dataset``: a data set file of :func:`lazyphase.store.write_datasets` to read the data from.
    ``mem_mb``: the memory granted to the job; the job refuses to start (``MemoryError`` naming
    the estimate and the cells) when :func:`estimate_mem_mb` exceeds it.
    ``checkpoint``: a checkpoint file (docs/checkpoints.md): training resumes from it when it was
    written for the same cells and code (:func:`checkpoint_key`), writes it every
    ``checkpoint_every`` minutes and on SIGTERM/SIGINT (then raises
    :class:`~lazyphase.core.train.TrainingInterrupted`; the caller exits non-zero), and removes
    it once every run file is written. ``stop_at``: a test hook, the same as a signal at that step.

    Returns the per-cell status summaries (one line each).
    """
    if len(cells) != len(outs):
        raise ValueError(f"{len(cells)} cells but {len(outs)} output paths")
    valid = [validate_cell(c, where=f"{o}: ") for c, o in zip(cells, outs)]
    need = estimate_mem_mb(valid)
    if mem_mb is not None and need > mem_mb:
        raise MemoryError(
            f"{len(valid)} cells (m={valid[0]['m']}, depth={valid[0]['depth']}, "
            f"{sum(len(c['seeds']) for c in valid)} replicas) need about {need} MB but the job "
            f"has mem_mb={mem_mb}; raise resources.mem_mb or split the batch (batch_over)"
        )
    set_threads(threads)
    start = time.perf_counter()
    ckpt = None
    with job_device(gpus) as device, stop_signals() as pending:
        data = read_datasets(dataset) if dataset else None
        if checkpoint is not None:
            log.info("job pid %d, checkpoint %s", os.getpid(), checkpoint)
            ckpt = Checkpointing(
                checkpoint,
                checkpoint_key(valid, device),
                every=60.0 * checkpoint_every,
                signal=pending,
                stop_at=stop_at,
            )
        t_train = time.perf_counter()
        run = train_replicas(
            valid, device=device, log_every=log_every, datasets=data, checkpoint=ckpt
        )
        t_train = time.perf_counter() - t_train
    lines = []
    offset = 0
    for cell, out in zip(valid, outs):
        idx = list(range(offset, offset + len(cell["seeds"])))
        offset += len(idx)
        write_cell(out, run, idx, cell)
        st = [run.result.status[i] for i in idx]
        lines.append(
            f"{out}: m={cell['m']} L={cell['depth']} "
            f"s={effective_s(cell, run.replicas[idx[0]].scales):.4g} {cell['activation']} "
            f"replicas={len(idx)} " + " ".join(f"{k}={st.count(k)}" for k in sorted(set(st)))
        )
    log.info(
        "trained %d replicas of %d cells on %s in %.1fs (training %.1fs)",
        len(run.replicas), len(cells), device, time.perf_counter() - start, run.result.seconds,
    )  # fmt: skip
    if ckpt is not None:
        log.info(
            "steps trained by this job: %d in %.2fs (%s)", ckpt.steps_trained, t_train,
            "started over" if ckpt.resumed_from is None else f"resumed at {ckpt.resumed_from}",
        )  # fmt: skip
        log.info("training segments: %s", ckpt.segments())
        ckpt.remove()
    return lines


def checkpoint_path(experiment: str, batch: str) -> str:
    """Where the checkpoint of a ``train_cell`` job lives: beside, not inside, its output
    directory, which Snakemake deletes when the job fails."""
    return f"results/{experiment}/checkpoints/{batch}.pt"


def checkpoint_key(cells: Sequence[Mapping[str, Any]], device: str) -> str:
    """The key a checkpoint must carry to be resumed: a hash of the validated cells (seeds
    included), the code fingerprint, the torch version and the device type."""
    h = hashlib.sha256()
    h.update(json.dumps(list(cells), sort_keys=True, default=repr).encode())
    h.update(code_fingerprint().encode())
    h.update(torch.__version__.encode())
    h.update(str(torch.device(device).type).encode())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def stop_signals() -> Iterator[Callable[[], int]]:
    """While open, SIGTERM and SIGINT only set a flag; yields a function returning the pending
    signal's number (0: none), which the training loop polls every step. Outside the main thread
    (where handlers cannot be installed) nothing is installed and it always returns 0."""
    pending = [0]
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return

    def handler(signum: int, frame: Any) -> None:
        pending[0] = signum  # nothing else: the loop logs, writes and stops

    sigs = (signal.SIGTERM, signal.SIGINT)
    old = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield lambda: pending[0]
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def estimate_mem_mb(cells: Sequence[Mapping[str, Any]]) -> int:
    """Peak memory of a training job in MB from ``(m, n, L, replicas, snapshots)``.

    Parameters are held four times (``θ0``, ``Δθ``, its previous value, ``θ``) plus one gradient;
    activations twice per layer on the training, test and kernel sets; the stored Gram snapshots;
    a fixed 600 MB for the interpreter, torch and h5py.
    """
    c = cells[0]
    reps = sum(len(x["seeds"]) for x in cells)
    m, depth, b = c["m"], c["depth"], int(c["bias"])
    n_k = c["n_kernel"] or (c["n"] if c["n"] <= 256 else 256)
    params = (c["d"] + b) * m + (depth - 1) * m * (m + b) + m + b
    points = c["n"] + c["n_test"] + n_k
    grams = (c["n_gram_snapshots"] + 3) * (depth + 1) * n_k * n_k
    item = 8 if c["dtype"] == "float64" else 4
    total = reps * (5 * params + 3 * depth * points * m + grams) * item
    return int(600 + 1.5 * total / 2**20)


def estimate_runtime_min(cells: Sequence[Mapping[str, Any]], gflops: float = 2.0) -> int:
    """Upper bound of a job's run time in minutes: every replica running ``max_steps`` steps of
    ``6 n (d m + (L−1) m²)`` FLOPs at ``gflops`` (a conservative one-core rate), plus 5 minutes."""
    c = cells[0]
    reps = sum(len(x["seeds"]) for x in cells)
    m = c["m"]
    flops = 6 * c["n"] * (c["d"] * m + (c["depth"] - 1) * m * m + m) * c["max_steps"] * reps
    return int(5 + flops / (gflops * 1e9) / 60)
