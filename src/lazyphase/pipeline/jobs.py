"""One training job: validate cells, train their replicas, write one file per cell.

This is the function the Snakemake rule, the ``lazyphase train-cell`` command and notebooks
call; it runs without Snakemake. Under a job budget (:mod:`lazyphase.pipeline.budget`) the
replicas train in sequential chunks that fit the device; a cell split over chunks is merged
(:func:`merge_runs`) into the run file one batch would have written, bit for bit on the CPU
(docs/scale.md, "Splitting").
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from lazyphase.cells import validate_cell
from lazyphase.core import activations
from lazyphase.core.linearized import Linearized
from lazyphase.core.model import effective_s, forward
from lazyphase.core.train import (
    BatchRun,
    Checkpointing,
    TrainingInterrupted,
    TrainResult,
    train_replicas,
)
from lazyphase.pipeline.budget import Budget, chunk_replicas, job_mem_mb, job_runtime_min
from lazyphase.pipeline.device import job_device
from lazyphase.pipeline.fingerprint import code_fingerprint, provenance
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
    budget: Budget | None = None,
    chunk: int | None = None,
) -> list[str]:
    """Train every replica of ``cells`` and write ``outs[i]`` for ``cells[i]``.

    ``dataset``: a data set file of :func:`lazyphase.store.write_datasets` to read the data from.
    ``mem_mb``: the memory granted to the job; the job refuses to start (``MemoryError`` naming
    the estimate and the cells) when the estimate exceeds it. ``budget``: train the replicas in
    sequential chunks of :func:`~lazyphase.pipeline.budget.chunk_replicas` (on the device the job
    gets: ``budget.device_mem_mb`` on a GPU, ``budget.mem_mb`` on the CPU); without it, in one
    batch. ``chunk``: replicas per chunk, overriding the budget's. A cell's file is written as
    soon as its last chunk is done.
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
    set_threads(threads)
    start = time.perf_counter()
    lines = []
    ckpts: list[Checkpointing] = []
    deadline = slurm_deadline() if checkpoint is not None else None
    with (
        job_device(gpus) as device,
        stop_signals(deadline and deadline.seconds) as pending,
        _requeue_at_deadline(ckpts, deadline is not None and deadline.requeue),
    ):
        checkpointing = _checkpoints(checkpoint, device, checkpoint_every, pending, stop_at, ckpts)
        job_budget = _device_budget(budget, device)
        _check_memory(valid, job_budget, mem_mb)
        chunk = chunk or chunk_replicas(valid, job_budget)
        data = read_datasets(dataset) if dataset else None
        seconds, t_train = 0.0, time.perf_counter()
        for i, run in _train_chunked(valid, chunk, device, log_every, data, checkpointing):
            write_cell(outs[i], run, list(range(len(valid[i]["seeds"]))), valid[i])
            seconds += run.result.seconds
            lines.append(_summary_line(outs[i], valid[i], run))
        t_train = time.perf_counter() - t_train
    log.info(
        "trained %d replicas of %d cells in chunks of %d on %s in %.1fs (training %.1fs)",
        sum(len(c["seeds"]) for c in valid), len(cells), chunk, device,
        time.perf_counter() - start, seconds,
    )  # fmt: skip
    _close_checkpoints(ckpts, t_train)
    return lines


def _checkpoints(
    checkpoint: str | None,
    device: str,
    every_min: float,
    pending: Callable[[], int],
    stop_at: int | None,
    ckpts: list[Checkpointing],
) -> Callable[[Sequence[Mapping[str, Any]], int | None], Checkpointing | None]:
    """The checkpoint of each chunk ``k`` (``None``: the whole job in one batch) of a job whose
    checkpoint file is ``checkpoint`` (``None``: no checkpoints); each one made is appended to
    ``ckpts``, so that the job can close them when every run file is written."""

    def checkpointing(sub_cells: Sequence[Mapping[str, Any]], k: int | None):
        # one file per chunk: each chunk resumes from its own last checkpoint
        if checkpoint is None:
            return None
        path = checkpoint if k is None else f"{checkpoint}.chunk{k}"
        log.info("job pid %d, checkpoint %s", os.getpid(), path)
        ckpts.append(Checkpointing(path, checkpoint_key(sub_cells, device),
                                   every=60.0 * every_min, signal=pending,
                                   stop_at=stop_at, provenance=provenance()))  # fmt: skip
        return ckpts[-1]

    return checkpointing


def _device_budget(budget: Budget | None, device: str) -> Budget | None:
    """The budget on the device the job got (a GPU job that fell back to the CPU has no device
    memory of its own)."""
    if budget is None:
        return None
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    return Budget(
        mem_mb=budget.mem_mb, runtime_min=budget.runtime_min, device=kind,
        device_mem_mb=budget.device_mem_mb if kind == "cuda" else 0,
    )  # fmt: skip


def _check_memory(valid: Sequence[Mapping[str, Any]], budget: Budget | None, mem_mb) -> None:
    need = job_mem_mb(valid, budget)
    if mem_mb is not None and need > mem_mb:
        n_rep = sum(len(c["seeds"]) for c in valid)
        raise MemoryError(
            f"{len(valid)} cells (m={valid[0]['m']}, depth={valid[0]['depth']}, "
            f"{n_rep} replicas) need about {need} MB but the job has mem_mb={mem_mb}; raise "
            "resources.mem_mb, set a job budget (docs/scale.md) or split the batch (batch_over)"
        )


def _summary_line(out: str, cell: Mapping[str, Any], run: BatchRun) -> str:
    st = run.result.status
    return (
        f"{out}: m={cell['m']} L={cell['depth']} "
        f"s={effective_s(cell, run.replicas[0].scales):.4g} {cell['activation']} "
        f"replicas={len(st)} " + " ".join(f"{k}={st.count(k)}" for k in sorted(set(st)))
    )


def _close_checkpoints(ckpts: Sequence[Checkpointing], t_train: float) -> None:
    """Log what each checkpoint saved this job, then remove them (every run file is written)."""
    for ckpt in ckpts:
        log.info(
            "steps trained by this job: %d in %.2fs (%s)", ckpt.steps_trained, t_train,
            "started over" if ckpt.resumed_from is None else f"resumed at {ckpt.resumed_from}",
        )  # fmt: skip
        log.info("training segments: %s", ckpt.segments())
    for ckpt in ckpts:
        ckpt.remove()


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
def stop_signals(deadline: float | None = None) -> Iterator[Callable[[], int]]:
    """While open, SIGTERM and SIGINT only set a flag; yields a function returning the pending
    signal's number (0: none), which the training loop polls every step. ``deadline``: seconds
    from now after which SIGALRM (14) sets the flag too, so that a job stops itself, with its
    checkpoint, before its allocation ends (:func:`slurm_deadline`). Outside the main thread
    (where handlers cannot be installed) nothing is installed and it always returns 0."""
    pending = [0]
    if threading.current_thread() is not threading.main_thread():
        yield lambda: 0
        return

    def handler(signum: int, frame: Any) -> None:
        pending[0] = signum  # nothing else: the loop logs, writes and stops

    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)
    old = {s: signal.signal(s, handler) for s in sigs}
    if deadline is not None:
        signal.setitimer(signal.ITIMER_REAL, max(deadline, 1e-3))
    try:
        yield lambda: pending[0]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, h in old.items():
            signal.signal(s, h)


def slurm_seconds(text: str) -> float | None:
    """Seconds in a SLURM duration, ``[days-][hours:]minutes:seconds`` as squeue's ``%L`` and
    sacct's ``Elapsed`` print it; None for ``UNLIMITED``, ``NOT_SET`` or anything unreadable."""
    days, _, hms = text.strip().rpartition("-")
    parts = hms.split(":")
    if (
        not 2 <= len(parts) <= 3
        or not all(p.isdigit() for p in parts)
        or not (days or "0").isdigit()
    ):
        return None
    h, m, sec = [0] * (3 - len(parts)) + [int(p) for p in parts]
    return float(((int(days or 0) * 24 + h) * 60 + m) * 60 + sec)


class SlurmDeadline(NamedTuple):
    """When a SLURM job stops itself (:func:`slurm_deadline`): ``seconds`` from now, and whether
    it may then ``requeue`` itself (:func:`slurm_requeue`)."""

    seconds: float
    requeue: bool


def slurm_deadline(env: Mapping[str, str] = os.environ) -> SlurmDeadline | None:
    """Inside a SLURM job: when the job should stop itself, a margin before its time limit (5 %
    of the time left, at least 15 s and at most 2 min). SLURM's own SIGTERM comes only at the
    limit, and a job that finishes in the last seconds is still marked TIMEOUT and its outputs
    deleted; stopping before the limit leaves time to write the checkpoint and exit cleanly, so
    that the next segment resumes. The job may requeue itself then only if the window left to
    train is at least as long as what its start-up took of the limit: otherwise each run would
    add little and requeue again. None outside SLURM or without a limit."""
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%L %l"], capture_output=True,
                             text=True, timeout=10).stdout.split()  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("SLURM job %s: time left unknown (%s); no stop before the limit", job, exc)
        return None
    left = slurm_seconds(out[0]) if out else None
    if left is None:
        return None
    limit = slurm_seconds(out[1]) if len(out) > 1 else None
    window = max(left - min(max(0.05 * left, 15.0), 120.0), 0.0)
    requeue = limit is not None and window >= limit - left
    log.info("SLURM job %s: %.0fs left of %s; stopping with a checkpoint after %.0fs%s", job,
             left, out[1] if len(out) > 1 else "?", window,
             "" if requeue else " (start-up took more than that: no requeue)")  # fmt: skip
    return SlurmDeadline(window, requeue)


def slurm_requeue(env: Mapping[str, str] = os.environ) -> bool:
    """Inside a SLURM batch job that may be requeued (``scontrol show job`` says ``Requeue=1``:
    the cluster's ``JobRequeue=1`` default, ``sbatch --requeue``, the plugin's
    ``--slurm-requeue``; ``--slurm-no-requeue`` turns it off): put the job back in the queue
    with ``scontrol requeue``. SLURM then ends this run and starts the batch script again under
    the same job id, with a fresh time limit, once its requeue hold is over (``cred_expire``,
    120 s by default); the rerun resumes from the checkpoint. The workflow sees one job that
    is still pending, so no Snakemake retry is spent and the time limit is not doubled.
    Returns whether the job was requeued."""
    job = env.get("SLURM_JOB_ID")
    if not job:
        return False
    try:
        show = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True,
                              timeout=10).stdout  # fmt: skip
        if "Requeue=1" not in show.split():
            log.info("SLURM job %s may not be requeued (--no-requeue): exiting for a retry", job)
            return False
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True,
                              timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("SLURM job %s: requeue failed (%s): exiting for a retry", job, exc)
        return False
    if done.returncode != 0:
        log.warning("SLURM job %s: scontrol requeue: %s", job, done.stderr.strip())
        return False
    log.warning("SLURM job %s requeued itself: it runs again, resuming from the checkpoint", job)
    return True


@contextlib.contextmanager
def _requeue_at_deadline(ckpts: Sequence[Checkpointing], allowed: bool) -> Iterator[None]:
    """A job stopped by its own deadline (SIGALRM, :func:`slurm_deadline`) after training
    something requeues itself (:func:`slurm_requeue`) if ``allowed``; the interruption still
    propagates. Only after progress: a job that cannot train a step would requeue forever."""
    try:
        yield
    except TrainingInterrupted as exc:
        if allowed and exc.signum == signal.SIGALRM and any(c.steps_trained for c in ckpts):
            slurm_requeue()
        raise


def _train_chunked(
    cells: Sequence[Mapping[str, Any]],
    chunk: int,
    device: str,
    log_every: float,
    data: Any,
    checkpointing: Callable[[Sequence[Mapping[str, Any]], int | None], Any] = lambda c, k: None,
) -> Iterator[tuple[int, BatchRun]]:
    """Yield ``(i, run)`` per cell ``cells[i]`` once all its replicas are trained, ``run``
    holding exactly that cell's replicas; ``chunk`` replicas train at once, in order."""
    # the replicas in order, as (cell index, seed)
    order = [(i, seed) for i, c in enumerate(cells) for seed in c["seeds"]]
    if chunk >= len(order):  # one batch: the historical path
        run = train_replicas(
            cells, device=device, log_every=log_every, datasets=data,
            checkpoint=checkpointing(cells, None),
        )  # fmt: skip
        offset = 0
        for i, cell in enumerate(cells):
            idx = list(range(offset, offset + len(cell["seeds"])))
            offset += len(idx)
            yield i, subset_run(run, idx)
        return
    parts: dict[int, list[tuple[BatchRun, list[int]]]] = {}
    done_seeds: dict[int, int] = {}
    n_chunks = -(-len(order) // chunk)
    bounds = [round(k * len(order) / n_chunks) for k in range(n_chunks + 1)]  # even chunks
    for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        piece = order[lo:hi]
        sub_cells, owners = [], []
        for i, seed in piece:
            if sub_cells and owners[-1] == i:
                sub_cells[-1]["seeds"].append(seed)
            else:
                sub_cells.append({**cells[i], "seeds": [seed]})
                owners.append(i)
        log.info("chunk: replicas %d-%d of %d", lo, hi - 1, len(order))
        run = train_replicas(
            sub_cells, device=device, log_every=log_every, datasets=data,
            checkpoint=checkpointing(sub_cells, k),
        )  # fmt: skip
        # the trained replicas leave the device: later chunks get all of it
        run.result.params_final = [p.cpu() for p in run.result.params_final]
        if len(piece) == 1 and device == "cpu":
            _batched_output_std0(run)
        offset = 0
        for i, sub in zip(owners, sub_cells):
            idx = list(range(offset, offset + len(sub["seeds"])))
            offset += len(idx)
            parts.setdefault(i, []).append((run, idx))
            done_seeds[i] = done_seeds.get(i, 0) + len(idx)
            if done_seeds[i] == len(cells[i]["seeds"]):
                yield i, merge_runs(parts.pop(i))
        del run


def _batched_output_std0(run: BatchRun) -> None:
    """Recompute ``output_std0`` of a one-replica run as a batch of several computes it.

    ``Tensor.std(dim=1)`` of a single row takes another reduction path than the same row inside
    a batch (a last-bit difference); the trajectories themselves do not depend on the batch. The
    output at init is recomputed exactly (the same forward, on the CPU) and its std taken over a
    batch of two copies."""
    rep = run.replicas[0]
    cell = rep.cell
    dtype = getattr(torch, cell["dtype"])
    x = rep.data.x_train.to(dtype=dtype)[None]
    alpha = torch.tensor([rep.scales.alpha], dtype=dtype)
    f = forward(run.params0, x, activations.get(cell["activation"]), alpha, cell["bias"]).out
    run.output_std0 = torch.cat([f, f]).to(torch.float64).std(dim=1)[:1].numpy()


def subset_run(run: BatchRun, idx: Sequence[int]) -> BatchRun:
    """The replicas ``idx`` of ``run``, with their own snapshot steps (:func:`merge_runs`)."""
    return merge_runs([(run, list(idx))])


def merge_runs(parts: Sequence[tuple[BatchRun, Sequence[int]]]) -> BatchRun:
    """One :class:`BatchRun` of the replicas ``idx`` of each ``(run, idx)`` part, in order, as if
    they had been trained in one batch.

    A replica's arithmetic does not depend on its batch (``core.model._matvec``); what does is the
    list of snapshot steps: a batch records the scheduled steps up to the step ``D`` at which its
    last replica stopped, plus ``D``. The result keeps the steps of the selected replicas alone:
    the scheduled steps before the step ``D'`` at which the last of them stopped, plus ``D'`` (as
    if they had been trained without the others); a stopped replica is frozen, so its row at a
    step is the batch's first row at or after it. The same holds for the Gram and weight
    snapshots. Events keep the batch order (by step, then replica)."""
    m = _Merge(parts)
    res0 = m.res[0]
    weights = None
    if res0.weights is not None:
        weights = [
            m.cat(lambda run, r, li=li: r.weights[li], "traj") for li in range(len(res0.weights))
        ]
    n_layers = len(res0.params_final)
    result = TrainResult(
        status=[r.status[i] for (run, idx), r in zip(parts, m.res) for i in idx],
        final_step=m.cat(lambda run, r: r.final_step),
        steps=m.steps,
        t=m.cat(lambda run, r: r.t, "traj"),
        lr=m.cat(lambda run, r: r.lr, "traj"),
        train_loss=m.cat(lambda run, r: r.train_loss, "traj"),
        test_loss=m.cat(lambda run, r: r.test_loss, "traj"),
        rd=m.cat(lambda run, r: r.rd, "traj"),
        gram_steps=m.gram_steps,
        gram=m.cat(lambda run, r: r.gram, "gram"),
        params_final=[m.tcat(lambda run, r, li=li: r.params_final[li]) for li in range(n_layers)],
        events=m.events(),
        seconds=sum(r.seconds for r in m.res),
        best_test_loss=m.cat(lambda run, r: r.best_test_loss),
        best_test_step=m.cat(lambda run, r: r.best_test_step),
        tail_train_loss=m.cat(lambda run, r: r.tail_train_loss),
        weights=weights,
    )
    return BatchRun(
        linearized=m.linearized(),
        replicas=[run.replicas[i] for run, idx in parts for i in idx],
        params0=[m.tcat(lambda run, r, li=li: run.params0[li]) for li in range(n_layers)],
        lr0=m.cat(lambda run, r: run.lr0),
        theta0_eigs=m.cat(lambda run, r: run.theta0_eigs),
        output_std0=m.cat(lambda run, r: run.output_std0),
        gram_normalization=m.cat(lambda run, r: run.gram_normalization),
        result=result,
    )


class _Merge:
    """The selected replicas of several runs on the snapshot steps of :func:`merge_runs`."""

    def __init__(self, parts: Sequence[tuple[BatchRun, Sequence[int]]]) -> None:
        self.parts = parts
        self.res = [p[0].result for p in parts]
        res = self.res
        longest = max(range(len(parts)), key=lambda k: (res[k].steps[-1], len(res[k].steps)))
        # the cell's own last step: its file must not depend on which other cells shared its batch
        last = int(max(int(r.final_step[i]) for (run, idx), r in zip(parts, res) for i in idx))
        self.steps = np.asarray([s for s in res[longest].steps if s < last] + [last], np.int64)
        self.gram_steps = np.asarray(
            [s for s in res[longest].gram_steps if s < last] + [last], dtype=np.int64
        )

    @staticmethod
    def _rows(part_steps: np.ndarray, full: np.ndarray) -> np.ndarray:
        # the first row at or after each step (a replica's record holds its final value from its
        # stop on), else the last row (the part stopped before: all its replicas are frozen)
        j = np.searchsorted(part_steps, full, side="left")
        return np.minimum(j, len(part_steps) - 1)

    def cat(self, get, along_steps: str | None = None) -> np.ndarray:
        arrs = []
        for (run, idx), r in zip(self.parts, self.res):
            a = get(run, r)[np.asarray(idx)]
            if along_steps == "traj":
                a = a[:, self._rows(r.steps, self.steps)]
            elif along_steps == "gram":
                a = a[:, self._rows(r.gram_steps, self.gram_steps)]
            arrs.append(a)
        return np.concatenate(arrs)

    def tcat(self, get) -> torch.Tensor:
        return torch.cat(
            [get(run, r)[torch.as_tensor(list(idx))] for (run, idx), r in zip(self.parts, self.res)]
        )

    def events(self) -> list:
        """The selected replicas' events, renumbered, in batch order (by step, then replica)."""
        events, offset = [], 0
        for (_run, idx), r in zip(self.parts, self.res):
            local = {int(g): offset + k for k, g in enumerate(idx)}
            events += [type(e)(**{**e.__dict__, "replica": local[e.replica]})
                       for e in r.events if e.replica in local]  # fmt: skip
            offset += len(idx)
        return sorted(events, key=lambda e: (e.step, e.replica))

    def linearized(self) -> Linearized | None:
        if any(run.linearized is None for run, _ in self.parts):
            return None
        skipped = sorted(
            {run.linearized.skipped for run, _ in self.parts if run.linearized.skipped}
        )
        return Linearized(
            test_output=self.cat(lambda run, r: run.linearized.test_output, "traj"),
            train_loss=self.cat(lambda run, r: run.linearized.train_loss, "traj"),
            test_loss=self.cat(lambda run, r: run.linearized.test_loss, "traj"),
            test_output0=self.cat(lambda run, r: run.linearized.test_output0),
            test_output_final=self.cat(lambda run, r: run.linearized.test_output_final),
            skipped="; ".join(skipped),
            test_output_converged=self.cat(lambda run, r: run.linearized.test_output_converged),
        )


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


def estimate_runtime_min(cells: Sequence[Mapping[str, Any]], budget: Budget | None = None) -> int:
    """The ``runtime`` resource of a job in minutes: the calibrated upper bound (every replica
    runs ``max_steps``) × ``budget.safety`` + 5 (:func:`lazyphase.pipeline.budget.job_runtime_min`)."""
    return job_runtime_min(cells, budget)


def measure_job_seconds(device: str = "cpu") -> float:
    """Seconds of a one-step job of a tiny cell through :func:`lazyphase.pipeline.jobs.train_cells`
    (data, initialization, NTK at init, writing the run file): call it first in a fresh process,
    so the first torch calls are counted as a job pays them."""
    import tempfile
    import time

    cell = dict(m=16, depth=1, n=32, d=8, s=0.0, max_steps=1, seeds=[0])
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train_cells([cell], [f"{tmp}/x.h5"], gpus=1 if device == "cuda" else 0, log_every=1e9)
        return time.perf_counter() - start
