"""Full-batch gradient descent on R replicas at once (docs/conventions.md §3).

Replicas are stacked on a leading axis and every step is a handful of ``torch.bmm`` calls, so R
small networks cost about as much as one R-times larger one. Parameters are stored as
``θ = θ0 + Δθ`` and only ``Δθ`` is updated (lazy updates are far below the rounding unit of
``θ0``). A step whose loss rises by more than ``safeguard_factor`` (or is not finite) is undone
for that replica and its step size halved; after ``max_halvings`` halvings the replica is
``diverged`` (``safeguard: none`` undoes nothing, so catapults are kept, and stops a replica as
``diverged`` only when its loss is not finite or above ``diverge_factor · R(θ0)``). With a
``parameterization`` layer ``l`` steps ``η r_l`` (docs/conventions.md §7). Replicas that stop
(converged, early-stopped, diverged) are frozen while the others go on; the batch ends when
none is active or at ``max_steps``.

The public trainer API. The batch level lives here (:func:`train_replicas`, the loop
:func:`train`); its parts are in :mod:`lazyphase.core.training` (one module per responsibility,
re-exported here, grouped in ``__all__``), so that this module stays at import floor 5
(docs/architecture.md, "Import floors").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import torch

from lazyphase.core.data import Dataset
from lazyphase.core.kernels import normalization
from lazyphase.core.linearized import Linearized, linearize
from lazyphase.core.training.batch import (
    BATCH_KEYS,
    EIGS_MAX_N,
    check_batchable,
    replicas_of,
    stacked_problem,
    theta0_eigs,
)
from lazyphase.core.training.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpointing,
    TrainingInterrupted,
    read_checkpoint,
    segments_text,
)
from lazyphase.core.training.progress import (
    PROGRESS_EVERY,
    Progress,
    ProgressOption,
    ProgressReport,
    print_progress,
    progress_callback,
)
from lazyphase.core.training.records import Records
from lazyphase.core.training.results import BatchRun, Event, Problem, Replica, TrainResult
from lazyphase.core.training.sampler import BatchSampler, batch_sampler
from lazyphase.core.training.schedule import TrainPlan, log_schedule
from lazyphase.core.training.step_size import (
    initial_lr,
    objective_divisor,
    step_rule,
    stop_settings,
)
from lazyphase.core.training.stopping import Safeguard, stop_rules
from lazyphase.core.training.working_set import WorkingSet

__all__ = [  # noqa: RUF022 (grouped by the module that defines them)
    # the batch and the loop (defined here)
    "train_replicas", "train",
    # inputs and outputs (training/results.py)
    "BatchRun", "Replica", "Problem", "TrainResult", "Event", "Linearized",
    # cells -> one batch (training/batch.py)
    "BATCH_KEYS", "EIGS_MAX_N", "check_batchable",
    # step-size policies (training/step_size.py)
    "initial_lr", "step_rule", "objective_divisor", "stop_settings",
    # snapshot schedule (training/schedule.py)
    "log_schedule",
    # checkpoints (training/checkpoint.py)
    "Checkpointing", "TrainingInterrupted", "CHECKPOINT_FORMAT", "read_checkpoint",
    "segments_text",
    # progress (training/progress.py)
    "Progress", "ProgressOption", "PROGRESS_EVERY", "progress_callback", "print_progress",
    # population SGD batches (training/sampler.py)
    "batch_sampler", "BatchSampler",
]  # fmt: skip

#: the trainer's logger (its parts log under the same name; pipeline/budget.py silences it)
log = logging.getLogger("lazyphase.train")


def train_replicas(
    cells: Sequence[Mapping[str, Any]],
    *,
    device: str | torch.device = "cpu",
    log_every: float = 10.0,
    datasets: Mapping[str, Dataset] | None = None,
    checkpoint: Checkpointing | None = None,
    progress: ProgressOption = None,
) -> BatchRun:
    """Train every replica (seed) of every cell in one batch. Cells must agree on
    :data:`BATCH_KEYS`; they may differ in ``s``, ``scheme``, ``alpha``, ``kappa_via``, seeds,
    data and step-size policy. ``datasets`` (from :func:`lazyphase.store.read_datasets`) supplies
    the data by :func:`~lazyphase.core.data.dataset_key`; missing ones are drawn here.
    ``checkpoint``: passed to :func:`train` (resume, periodic and on-signal checkpoints).
    ``progress``: ``True`` prints the training progress on stderr (every second: step, replicas
    still training, elapsed time), a callable receives a :class:`Progress` as often; the same
    facts go to the ``lazyphase.train`` logger every ``log_every`` seconds either way."""
    check_batchable(cells)
    first = cells[0]
    reps = replicas_of(cells, datasets)
    problem, f_train = stacked_problem(first, reps, device)
    eigs = theta0_eigs(problem, cells)
    n = first["n"]
    lr0 = torch.tensor(
        [initial_lr(r.cell, r.scales, float(eigs[i, -1]) / n) for i, r in enumerate(reps)],
        dtype=torch.float64,
    )
    settings = stop_settings(cells, [r.scales for r in reps])
    result = train(
        problem, lr0, settings, log_every=log_every, checkpoint=checkpoint, progress=progress
    )
    lin = linearize(problem, result, lr0.tolist(), max_n=EIGS_MAX_N)
    return BatchRun(
        replicas=reps,
        params0=[p.cpu() for p in problem.params0],
        lr0=lr0.numpy(),
        theta0_eigs=eigs.numpy(),
        output_std0=f_train.to(torch.float64).std(dim=1).cpu().numpy(),
        gram_normalization=normalization([r.scales for r in reps], first["m"]).numpy(),
        result=result,
        linearized=lin,
    )


def train(
    problem: Problem,
    lr0: torch.Tensor,
    settings: Mapping[str, Any],
    *,
    log_every: float = 10.0,
    checkpoint: Checkpointing | None = None,
    progress: ProgressOption = None,
) -> TrainResult:
    """Run gradient descent on all replicas of ``problem``.

    Stopped replicas leave the working set (all per-replica tensors are re-indexed), so a
    batch costs the sum of its replicas' steps, not R times the slowest one.

    Args:
        problem: replicas, data and activation.
        lr0: ``(R,)`` initial step sizes.
        settings: ``tol_rel, max_steps, patience, delta, n_snapshots, n_gram_snapshots,
            safeguard_factor, max_halvings`` (cell keys).
        log_every: seconds between progress lines on the ``lazyphase.train`` logger.
        progress: see :func:`progress_callback` (``True``: a progress line on stderr).
        checkpoint: resume from its file when it holds a valid checkpoint, write one every
            ``checkpoint.every`` seconds and on a stop signal (then raise
            :class:`TrainingInterrupted`). The result is bit-identical to an uninterrupted
            run's (``seconds`` aside).
    """
    start = time.perf_counter()
    n_rep = problem.params0[0].shape[0]
    plan = TrainPlan.of(settings, sgd=problem.sampler is not None)
    rec = Records(problem, plan, weights=bool(settings.get("weight_snapshots")))
    guard = Safeguard(n_rep, plan)
    ws = WorkingSet(problem, lr0)
    report = ProgressReport(progress, log_every, start)
    step, last_draw, elapsed = 0, -1, 0.0
    if checkpoint is not None and (state := checkpoint.begin()) is not None:
        step, last_draw, elapsed = _restore(state, problem, ws, guard, rec)
    start -= elapsed
    report.start = start
    while len(ws.ids):
        if plan.sgd and step > last_draw:  # not again when a step is retaken
            ws.draw_batch()
            last_draw = step
        judged = _judged_loss(ws, guard, step)
        if judged is None:
            continue  # retake the step from the restored state at the halved step size
        done = _evaluate(ws, plan, rec, step, *judged)
        report(step, plan.max_steps, len(ws.ids), rec.train)
        if done:
            break
        ws.step()
        step += 1
        if checkpoint is not None:
            checkpoint.after_step(step, partial(_state, last_draw, start, problem, ws, guard, rec))
    if checkpoint is not None:
        checkpoint.finish(step)
    return rec.result(problem, guard.events, start)


def _judged_loss(
    ws: WorkingSet, guard: Safeguard, step: int
) -> tuple[torch.Tensor, dict[int, str]] | None:
    """The training losses ``(R',)`` of ``ws`` and the replicas the safeguard stops, or None
    when it undid a step and every undone replica goes on (the step is to be retaken)."""
    loss = ws.train_loss()
    bad, stops = guard.check(ws, loss, step)
    if bad:
        if not stops:
            return None
        # a diverged replica is frozen at its last good state: recompute the forward
        loss = ws.train_loss()
    return loss, stops


def _evaluate(
    ws: WorkingSet,
    plan: TrainPlan,
    rec: Records,
    step: int,
    loss: torch.Tensor,
    stops: dict[int, str],
) -> bool:
    """Test, apply the stop rules, record and drop the stopping replicas at ``step``; whether
    none is left."""
    ws.last_loss = loss.clone()
    if plan.tail_from <= step < plan.max_steps:
        rec.add_tail(ws.ids, loss)
    test_loss = ws.test_loss() if plan.needs_test(step) else None
    stop_rules(ws, plan, step, loss, test_loss, stops)
    rec.record(ws, step, loss, test_loss, stops)
    if stops:
        rec.stop(ws, stops, step)
        ws.drop(stops)
    done = not len(ws.ids)
    rec.snapshot(step, done)
    return done


def _state(
    last_draw: int,
    start: float,
    problem: Problem,
    ws: WorkingSet,
    guard: Safeguard,
    rec: Records,
) -> dict[str, Any]:
    """What a checkpoint holds to continue exactly (besides its history)."""
    return {
        "last_draw": last_draw,
        "elapsed": time.perf_counter() - start,
        "ws": ws.state(),
        "guard": guard.state(),
        "rec": rec.state(),
        "sampler": None if problem.sampler is None else problem.sampler.state(),
        "torch_rng": torch.get_rng_state(),
    }


def _restore(
    state: Mapping[str, Any], problem: Problem, ws: WorkingSet, guard: Safeguard, rec: Records
) -> tuple[int, int, float]:
    """Continue from a checkpoint's ``state``; returns ``(step, last_draw, elapsed seconds)``."""
    ws.restore(state["ws"])
    guard.restore(state["guard"])
    rec.restore(state["rec"])
    if problem.sampler is not None:
        problem.sampler.set_state(state["sampler"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), int(state["last_draw"]), float(state["elapsed"])
