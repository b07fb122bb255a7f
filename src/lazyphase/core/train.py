"""Full-batch gradient descent on R replicas at once (docs/conventions.md §3).

Replicas are stacked on a leading axis and every step is a handful of ``torch.bmm`` calls, so R
small networks cost about as much as one R-times larger one. Parameters are stored as
``θ = θ0 + Δθ`` and only ``Δθ`` is updated (lazy updates are far below the rounding unit of
``θ0``). A step whose loss rises by more than ``safeguard_factor`` (or is not finite) is undone
for that replica and its step size halved; after ``max_halvings`` halvings the replica is
``diverged``. Replicas that stop (converged, early-stopped, diverged) are frozen while the
others go on; the batch ends when none is active or at ``max_steps``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lazyphase.core import activations
from lazyphase.core.data import (
    Dataset,
    data_params,
    dataset_key,
    derive_seed,
    generator,
    make_dataset,
    make_target,
    sphere,
)
from lazyphase.core.kernels import normalization, per_layer_ntk
from lazyphase.core.model import (
    Scales,
    backward,
    descend,
    forward,
    init_params,
    layer_masks,
    resolve_scales,
)

log = logging.getLogger("lazyphase.train")

#: Keys that must agree between cells trained in one batch (shapes, activation, trainer).
BATCH_KEYS = (
    "m", "depth", "d", "n", "n_test", "n_kernel", "bias", "centering", "activation", "dtype",
    "tol_rel", "max_steps", "patience", "delta", "delta_on", "n_snapshots", "n_gram_snapshots",
    "safeguard_factor", "max_halvings", "model", "init", "test_every", "batch_size", "tail_steps",
    "weight_snapshots",
)  # fmt: skip


#: Training sets up to this size always get the eigenvalues of the full NTK Gram at init (λ_min
#: for the linearized decay rate); above it only when the ntk step rule needs λ_max.
EIGS_MAX_N = 256


def log_schedule(max_steps: int, n: int) -> np.ndarray:
    """About ``n`` log-spaced integer steps in ``[0, max_steps]``, always with 0 and max_steps."""
    if max_steps == 0:
        return np.array([0], dtype=np.int64)
    pts = np.unique(np.round(np.geomspace(1, max_steps + 1, max(n - 1, 1)) - 1).astype(np.int64))
    return np.unique(np.concatenate([[0], pts, [max_steps]]))


@dataclass
class Problem:
    """Everything the trainer needs for R replicas, on one device and dtype.

    Shapes: ``x_*: (R, n_*, d)``, ``y_*: (R, n_*)``, ``f0_*: (R, n_*)`` (the frozen initial output
    for ``subtract_initial``, else zeros), ``alpha: (R,)``.
    """

    params0: list[torch.Tensor]
    act: activations.Activation
    alpha: torch.Tensor
    bias: bool
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_kernel: torch.Tensor
    f0_train: torch.Tensor
    f0_test: torch.Tensor
    masks: list[torch.Tensor | None] | None = None
    #: population SGD: global replica ids → a fresh batch ``(x: (R', B, d), y: (R', B))``
    sampler: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]] | None = None

    def outputs(self, params: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """``f_θ(x)``, shape ``(R, n)``."""
        return forward(params, x, self.act, self.alpha, self.bias).out


@dataclass
class Event:
    """A safeguard event of one replica."""

    replica: int
    step: int
    kind: str  # "halve" or "diverged"
    lr_old: float
    lr_new: float
    loss_prev: float
    loss_new: float


@dataclass
class TrainResult:
    """Trajectories of R replicas; ``S`` snapshots, ``G`` Gram snapshots.

    ``status``: per replica ``converged | max_steps | early_stopped | diverged``;
    ``final_step``: the step at which each replica stopped; ``steps: (S,)``; ``t, lr,
    train_loss, test_loss: (R, S)``; ``rd: (R, S, L+1)``; ``gram_steps: (G,)``;
    ``gram: (R, G, L+1, n_k, n_k)`` raw ``Θ[l]``; ``params_final``: ``θ0 + Δθ``.
    ``best_test_loss, best_test_step: (R,)``: the minimum test loss over every evaluation and its
    step; ``tail_train_loss: (R,)``: the training loss averaged over the last ``tail_steps`` steps
    before ``max_steps`` (nan for a replica that stopped earlier); ``weights``: with
    ``weight_snapshots``, per layer ``(R, S, …)`` the weights at the snapshots, else ``None``.
    """

    status: list[str]
    final_step: np.ndarray
    steps: np.ndarray
    t: np.ndarray
    lr: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    rd: np.ndarray
    gram_steps: np.ndarray
    gram: np.ndarray
    params_final: list[torch.Tensor]
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0
    best_test_loss: np.ndarray | None = None
    best_test_step: np.ndarray | None = None
    tail_train_loss: np.ndarray | None = None
    weights: list[np.ndarray] | None = None


def _loss(f: torch.Tensor, f0: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    e = f - f0 - y
    return e, 0.5 * (e * e).mean(dim=1).to(torch.float64)


class _Records:
    """Full-size (all R replicas) host copies of the latest value of every recorded quantity.

    Working replicas overwrite their rows at each snapshot; a stopped replica's row keeps its
    final value, which is what later snapshots show for it (it is frozen)."""

    def __init__(self, n_rep: int, n_layers: int) -> None:
        self.t = np.zeros(n_rep)
        self.lr = np.zeros(n_rep)
        self.train = np.zeros(n_rep)
        self.test = np.zeros(n_rep)
        self.rd = np.zeros((n_rep, n_layers))
        self.theta: np.ndarray | None = None
        self.rows: dict[str, list[np.ndarray]] = {k: [] for k in ("t", "lr", "train", "test", "rd")}
        self.steps: list[int] = []
        self.gram_rows: list[np.ndarray] = []
        self.gram_steps: list[int] = []

    def update(self, ids: np.ndarray, **values: torch.Tensor) -> None:
        for key, val in values.items():
            getattr(self, key)[ids] = val.detach().to("cpu", torch.float64).numpy()

    def update_theta(self, ids: np.ndarray, theta: torch.Tensor, n_rep: int) -> None:
        arr = theta.detach().to("cpu", torch.float64).numpy()
        if self.theta is None:
            self.theta = np.zeros((n_rep, *arr.shape[1:]))
        self.theta[ids] = arr

    def snapshot(self, step: int) -> None:
        for key in self.rows:
            self.rows[key].append(getattr(self, key).copy())
        self.steps.append(step)

    def gram_snapshot(self, step: int) -> None:
        assert self.theta is not None
        self.gram_rows.append(self.theta.copy())
        self.gram_steps.append(step)


def train(
    problem: Problem,
    lr0: torch.Tensor,
    settings: Mapping[str, Any],
    *,
    log_every: float = 10.0,
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
    """
    start = time.perf_counter()
    n_rep = problem.params0[0].shape[0]
    dev = problem.params0[0].device
    max_steps = int(settings["max_steps"])
    tol, factor = float(settings["tol_rel"]), float(settings["safeguard_factor"])
    patience, min_delta = settings["patience"], float(settings["delta"])
    snaps = set(log_schedule(max_steps, settings["n_snapshots"]).tolist())
    test_every = settings.get("test_every")
    tail_from = max_steps - int(settings.get("tail_steps", 2000))
    sgd = problem.sampler is not None
    if sgd:  # losses of different batches: only a non-finite loss triggers the safeguard
        factor = math.inf
    grams = set(log_schedule(max_steps, settings["n_gram_snapshots"] + 2).tolist())
    if settings["n_gram_snapshots"] == 0:
        grams = {0}

    n_layers = len(problem.params0)
    rec = _Records(n_rep, n_layers)
    status = ["max_steps"] * n_rep
    final_step = np.full(n_rep, max_steps, dtype=np.int64)
    halvings = [0] * n_rep
    events: list[Event] = []
    final_delta = [torch.zeros_like(p) for p in problem.params0]
    best_seen = np.full(n_rep, np.inf)
    best_step = np.zeros(n_rep, dtype=np.int64)
    tail_sum = np.zeros(n_rep)
    tail_cnt = np.zeros(n_rep, dtype=np.int64)
    w_now = (
        [p.detach().to("cpu", torch.float64).numpy().copy() for p in problem.params0]
        if settings.get("weight_snapshots")
        else None
    )
    w_rows: list[list[np.ndarray]] = []

    ids = np.arange(n_rep)  # global indices of the working set
    prob = problem
    p0 = problem.params0
    delta = [torch.zeros_like(p) for p in p0]
    spare = [torch.zeros_like(p) for p in p0]
    buf = [torch.empty_like(p) for p in p0]
    norm0 = torch.stack([p.flatten(1).norm(dim=1) for p in p0], dim=1).to(torch.float64)
    eta = lr0.to(device=dev, dtype=torch.float64).clone()
    eta_used = torch.zeros_like(eta)
    t = torch.zeros_like(eta)
    best_test = torch.full_like(eta, math.inf)
    wait = torch.zeros(n_rep, dtype=torch.int64, device=dev)
    loss0 = last_loss = None
    step, last_log, last_draw = 0, start, -1

    def rd_of(dl: list[torch.Tensor], rows: torch.Tensor | None = None) -> torch.Tensor:
        """RD of the working replicas (or of their subset ``rows``, whose ``Δθ`` is ``dl``)."""
        n0 = norm0 if rows is None else norm0[rows]
        return torch.stack([d.flatten(1).norm(dim=1) for d in dl], 1).to(torch.float64) / n0

    while len(ids):
        if sgd and step > last_draw:
            assert prob.sampler is not None
            prob.x_train, prob.y_train = prob.sampler(ids)
            last_draw = step
        params = [torch.add(a, b, out=c) for a, b, c in zip(p0, delta, buf)]
        fwd = forward(params, prob.x_train, prob.act, prob.alpha, prob.bias)
        err, loss = _loss(fwd.out, prob.f0_train, prob.y_train)
        stop_now: dict[int, str] = {}
        if loss0 is None:
            loss0, last_loss = loss.clone(), loss.clone()
            for r in torch.nonzero(~torch.isfinite(loss0)).flatten().tolist():
                stop_now[r] = "diverged"
        else:
            bad = ~torch.isfinite(loss) | (loss > factor * last_loss)
            if bool(bad.any()):
                for r in torch.nonzero(bad).flatten().tolist():
                    g = int(ids[r])
                    halvings[g] += 1
                    kind = "diverged" if halvings[g] > settings["max_halvings"] else "halve"
                    old = float(eta[r])
                    eta[r] = old / 2
                    events.append(
                        Event(g, step, kind, old, old / 2, float(last_loss[r]), float(loss[r]))
                    )
                    if kind == "diverged":
                        stop_now[r] = "diverged"
                for i in range(n_layers):
                    delta[i] = torch.where(
                        bad.view(-1, *([1] * (delta[i].dim() - 1))), spare[i], delta[i]
                    )
                t = torch.where(bad, t - eta_used, t)
                eta_used = torch.where(bad, torch.zeros_like(eta_used), eta_used)
                if not stop_now:
                    continue
                # a diverged replica is frozen at its last good state: recompute the forward
                params = [torch.add(a, b, out=c) for a, b, c in zip(p0, delta, buf)]
                fwd = forward(params, prob.x_train, prob.act, prob.alpha, prob.bias)
                err, loss = _loss(fwd.out, prob.f0_train, prob.y_train)
            last_loss = loss.clone()

        for r in torch.nonzero(loss <= tol * loss0).flatten().tolist():
            stop_now.setdefault(r, "converged")
        if tail_from <= step < max_steps:
            tail_sum[ids] += loss.detach().cpu().numpy()
            tail_cnt[ids] += 1
        need_test = step in snaps or patience is not None or step >= max_steps
        need_test = need_test or (test_every is not None and step % test_every == 0)
        test_loss = None
        if need_test:
            ft = prob.outputs(params, prob.x_test)
            test_loss = _loss(ft, prob.f0_test, prob.y_test)[1]
        if patience is not None:
            improved = test_loss < best_test - min_delta
            best_test = torch.where(improved, test_loss, best_test)
            wait = torch.where(improved, torch.zeros_like(wait), wait + 1)
            for r in torch.nonzero(wait >= patience).flatten().tolist():
                stop_now.setdefault(r, "early_stopped")
        if step >= max_steps:
            for r in range(len(ids)):
                stop_now.setdefault(r, "max_steps")
        tested = None  # (global rows, their test losses) evaluated at this step
        if test_loss is not None:
            rec.update(ids, t=t, lr=eta, train=loss, test=test_loss, rd=rd_of(delta))
            tested = ids, test_loss
        elif stop_now:  # record the final state of the stopping replicas only
            sel = torch.tensor(sorted(stop_now), device=dev)
            sub = [p[sel] for p in params]
            ft = forward(sub, prob.x_test[sel], prob.act, prob.alpha[sel], prob.bias).out
            tested = ids[sel.cpu().numpy()], _loss(ft, prob.f0_test[sel], prob.y_test[sel])[1]
            rec.update(
                tested[0], t=t[sel], lr=eta[sel], train=loss[sel], test=tested[1],
                rd=rd_of([d[sel] for d in delta], sel),
            )  # fmt: skip
        if tested is not None:
            rows, tl = tested[0], tested[1].detach().cpu().numpy()
            better = tl < best_seen[rows]
            best_seen[rows[better]] = tl[better]
            best_step[rows[better]] = step
        if w_now is not None and (step in snaps or stop_now):
            for li, p in enumerate(params):
                w_now[li][ids] = p.detach().to("cpu", torch.float64).numpy()
        if step in grams or stop_now:
            sel = torch.arange(len(ids)) if step in grams else torch.tensor(sorted(stop_now))
            sub = [p[sel.to(dev)] for p in params]
            theta = per_layer_ntk(
                sub, prob.x_kernel[sel.to(dev)], prob.act, prob.alpha[sel.to(dev)], prob.bias,
                prob.masks,
            )  # fmt: skip
            rec.update_theta(ids[sel.numpy()], theta, n_rep)
        if stop_now:
            for r, why in stop_now.items():
                status[int(ids[r])] = why
                final_step[int(ids[r])] = step
            stopped = torch.tensor(sorted(stop_now), device=dev)
            for i in range(n_layers):
                final_delta[i][torch.as_tensor(ids[sorted(stop_now)], device=dev)] = delta[i][
                    stopped
                ]
            keep = torch.tensor([r for r in range(len(ids)) if r not in stop_now], dtype=torch.long)
            keep_d = keep.to(dev)
            ids = ids[keep.numpy()]
            prob = _select(prob, keep_d)
            p0 = [p[keep_d] for p in p0]
            delta, spare, buf = ([x[keep_d] for x in xs] for xs in (delta, spare, buf))
            params = [x[keep_d] for x in params]
            fwd = _select_forward(fwd, keep_d)
            err = err[keep_d]
            norm0, eta, eta_used, t, best_test, wait, loss0, last_loss = (
                x[keep_d] for x in (norm0, eta, eta_used, t, best_test, wait, loss0, last_loss)
            )
        done = not len(ids)
        if step in snaps or done:
            rec.snapshot(step)
            if w_now is not None:
                w_rows.append([w.copy() for w in w_now])
        if step in grams or done:
            rec.gram_snapshot(step)
        now = time.perf_counter()
        if now - last_log > log_every or done:
            last_log = now
            _progress(step, max_steps, len(ids), n_rep, rec.train, now - start)
        if done:
            break

        eta_used = eta.clone()
        scaled = err * (eta_used.to(err.dtype)[:, None] / err.shape[1])
        signals = backward(params, fwd, prob.act, prob.alpha, scaled)
        descend(fwd, signals, delta, spare, prob.masks)
        delta, spare = spare, delta
        t = t + eta_used
        step += 1

    def stack(key: str) -> np.ndarray:
        return np.stack(rec.rows[key], axis=1)

    return TrainResult(
        status=status,
        final_step=final_step,
        steps=np.asarray(rec.steps, dtype=np.int64),
        t=stack("t"),
        lr=stack("lr"),
        train_loss=stack("train"),
        test_loss=stack("test"),
        rd=stack("rd"),
        gram_steps=np.asarray(rec.gram_steps, dtype=np.int64),
        gram=np.stack(rec.gram_rows, axis=1),
        params_final=[(a + b).detach() for a, b in zip(problem.params0, final_delta)],
        events=events,
        seconds=time.perf_counter() - start,
        best_test_loss=best_seen,
        best_test_step=best_step,
        tail_train_loss=np.where(tail_cnt > 0, tail_sum / np.maximum(tail_cnt, 1), np.nan),
        weights=(
            None
            if w_now is None
            else [np.stack([row[li] for row in w_rows], 1) for li in range(n_layers)]
        ),
    )


def _select(prob: Problem, keep: torch.Tensor) -> Problem:
    return Problem(
        params0=[p[keep] for p in prob.params0],
        act=prob.act,
        masks=prob.masks,
        sampler=prob.sampler,
        alpha=prob.alpha[keep],
        bias=prob.bias,
        **{
            k: getattr(prob, k)[keep]
            for k in ("x_train", "y_train", "x_test", "y_test", "x_kernel", "f0_train", "f0_test")
        },
    )


def _select_forward(fwd: Any, keep: torch.Tensor) -> Any:
    fwd.out = fwd.out[keep]
    fwd.inputs = [h[keep] for h in fwd.inputs]
    fwd.pre = [z[keep] for z in fwd.pre]
    return fwd


def _progress(
    step: int, max_steps: int, live: int, n_rep: int, train: np.ndarray, elapsed: float
) -> None:
    eta_s = elapsed / max(step, 1) * (max_steps - step) if live else 0.0
    log.info(
        "step %d/%d  active %d/%d  train loss median %.3e max %.3e  elapsed %.1fs  ETA <= %.0fs",
        step, max_steps, live, n_rep, float(np.median(train)), float(np.max(train)), elapsed, eta_s,
    )  # fmt: skip


# --------------------------------------------------------------------------- cells -> problem


@dataclass
class Replica:
    """One replica of one cell: its parameters, scales and data."""

    cell: Mapping[str, Any]
    seed: int
    scales: Scales
    data: Dataset


@dataclass
class BatchRun:
    """The outcome of :func:`train_replicas`: inputs, initial state and the trajectories."""

    replicas: list[Replica]
    params0: list[torch.Tensor]
    lr0: np.ndarray
    theta0_eigs: np.ndarray  # (R, n) eigenvalues of the full NTK Gram at init (NaN: not computed)
    output_std0: np.ndarray  # (R,) std_i f_θ0(x_i) on the training set (before any centering)
    gram_normalization: np.ndarray  # (R, L+1)
    result: TrainResult


def initial_lr(cell: Mapping[str, Any], scales: Scales, lam_max: float) -> float:
    """Step size of a replica from its cell's policy (``lam_max``: λ_max of Θ0 / n)."""
    policy = cell["lr_policy"]
    if policy == "ntk":
        return cell["lr_c"] / lam_max
    if policy == "luo":
        return cell["lr"] * math.sqrt(scales.betas[0] * scales.betas[-1]) / scales.alpha
    return step_rule(cell, scales) / objective_divisor(cell, scales)


def step_rule(cell: Mapping[str, Any], scales: Scales) -> float:
    """The step ``η`` of the chizat, chizat_alpha, width and fixed policies, before the division
    of :func:`objective_divisor` (``A = 1/scales.alpha`` is Chizat's output multiplier)."""
    policy, tau = cell["lr_policy"], cell["tau"]
    if policy == "chizat":
        return min(cell["lr_max"], cell["lr_c"] / tau**2)
    if policy == "chizat_alpha":
        return min(cell["lr_max"], cell["lr_c"] / (tau / scales.alpha) ** 2)
    if policy == "width":
        return cell["lr_c"] / cell["m"]
    if policy == "fixed":
        return cell["lr"]
    raise ValueError(
        f"unknown lr_policy {policy!r}; allowed: ntk, chizat, chizat_alpha, width, fixed, luo"
    )


def objective_divisor(cell: Mapping[str, Any], scales: Scales) -> float:
    """The step on ``R`` is ``η / objective_divisor``: the steps are taken on ``F = R/c²`` with
    ``c = objective_scale`` (model conventions), ``c = A`` (model chizat, ``step_on: F_alpha``,
    Chizat's ``F_A = R(A h)/A²``) or ``c = 1`` (model chizat, ``step_on: R``). ``mean_field``
    divides by ``A``; ``note_c6`` by ``A³``: the Note's C6 loop runs ``SGD(lr = η/A)`` on ``F_A``."""
    if cell.get("model", "conventions") != "chizat":
        return float(cell["objective_scale"]) ** 2
    a = 1.0 / scales.alpha
    return {"F_alpha": a**2, "R": 1.0, "mean_field": a, "note_c6": a**3}[cell["step_on"]]


def stop_settings(cells: Sequence[Mapping[str, Any]], scales: Sequence[Scales]) -> dict[str, Any]:
    """The batch's stop settings (those of its first cell) with ``delta`` in units of ``R``.

    ``delta_on: F_alpha`` gives ``δ`` on ``F_A = R/A²`` (the Note's C6 loop), i.e. ``δ·A²`` on
    ``R``; the trainer's δ is one number per batch, so every replica must share ``A``.
    """
    settings = dict(cells[0])
    if settings.get("delta_on", "R") == "F_alpha":
        mults = {1.0 / sc.alpha for sc in scales}
        if len(mults) > 1:
            raise ValueError(
                "delta_on: F_alpha needs one output multiplier A per batch; got "
                f"{sorted(mults)} (batch over tau only, not chizat_alpha)"
            )
        settings["delta"] = float(settings["delta"]) * mults.pop() ** 2
    return settings


def check_batchable(cells: Sequence[Mapping[str, Any]]) -> None:
    """Raise ``ValueError`` naming the key when cells cannot share one batch."""
    for key in BATCH_KEYS:
        vals = {repr(c[key]) for c in cells}
        if len(vals) > 1:
            raise ValueError(f"cells in one batch must agree on {key!r}; got {sorted(vals)}")


def train_replicas(
    cells: Sequence[Mapping[str, Any]],
    *,
    device: str | torch.device = "cpu",
    log_every: float = 10.0,
    datasets: Mapping[str, Dataset] | None = None,
) -> BatchRun:
    """Train every replica (seed) of every cell in one batch. Cells must agree on
    :data:`BATCH_KEYS`; they may differ in ``s``, ``scheme``, ``alpha``, ``kappa_via``, seeds,
    data and step-size policy. ``datasets`` (from :func:`lazyphase.store.read_datasets`) supplies
    the data by :func:`~lazyphase.data.dataset_key`; missing ones are drawn here."""
    check_batchable(cells)
    first = cells[0]
    dtype = getattr(torch, first["dtype"])
    act = activations.get(first["activation"])
    reps: list[Replica] = []
    for cell in cells:
        sc = resolve_scales(cell)
        for seed in cell["seeds"]:
            key = dataset_key(cell, seed)
            data = datasets[key] if datasets and key in datasets else make_dataset(cell, seed)
            reps.append(Replica(cell, seed, sc, data))
    params0 = init_params(first, [r.scales for r in reps], [r.seed for r in reps])
    masks = layer_masks(first)
    params0 = [p.to(device=device, dtype=dtype) for p in params0]
    alpha = torch.tensor([r.scales.alpha for r in reps], dtype=dtype, device=device)

    def stack(name: str) -> torch.Tensor:
        return torch.stack([getattr(r.data, name) for r in reps]).to(device=device, dtype=dtype)

    x_train, x_test = stack("x_train"), stack("x_test")
    f_train = forward(params0, x_train, act, alpha, first["bias"]).out
    f_test = forward(params0, x_test, act, alpha, first["bias"]).out
    subtract = first["centering"] == "subtract_initial"
    sampler = None
    if first["batch_size"] is not None:
        if subtract:
            raise ValueError(
                "batch_size (population SGD) cannot be combined with centering: subtract_initial"
            )
        sampler = batch_sampler([(r.cell, r.seed) for r in reps], device, dtype)
    problem = Problem(
        params0=params0,
        act=act,
        alpha=alpha,
        bias=first["bias"],
        x_train=x_train,
        y_train=stack("y_train"),
        x_test=x_test,
        y_test=stack("y_test"),
        x_kernel=stack("x_kernel"),
        f0_train=f_train if subtract else torch.zeros_like(f_train[:, :1]),
        f0_test=f_test if subtract else torch.zeros_like(f_test),
        masks=masks,
        sampler=sampler,
    )
    n = first["n"]
    if n <= EIGS_MAX_N or any(c["lr_policy"] == "ntk" for c in cells):
        theta0 = per_layer_ntk(params0, x_train, act, alpha, first["bias"], masks).sum(dim=1)
        eigs = torch.linalg.eigvalsh(theta0.to(torch.float64)).cpu()
    else:  # not needed by the step rule, and O(R n²) memory + O(R n³) time at n = 1000
        eigs = torch.full((len(reps), n), math.nan, dtype=torch.float64)
    lr0 = torch.tensor(
        [initial_lr(r.cell, r.scales, float(eigs[i, -1]) / n) for i, r in enumerate(reps)],
        dtype=torch.float64,
    )
    settings = stop_settings(cells, [r.scales for r in reps])
    result = train(problem, lr0, settings, log_every=log_every)
    return BatchRun(
        replicas=reps,
        params0=[p.cpu() for p in params0],
        lr0=lr0.numpy(),
        theta0_eigs=eigs.numpy(),
        output_std0=f_train.to(torch.float64).std(dim=1).cpu().numpy(),
        gram_normalization=normalization([r.scales for r in reps], first["m"]).numpy(),
        result=result,
    )


def batch_sampler(
    replicas: Sequence[tuple[Mapping[str, Any], int]], device: str | torch.device, dtype: Any
) -> Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]]:
    """Fresh batches of population SGD: replica ``i`` (a ``(cell, seed)``) draws ``batch_size``
    points on the sphere from its own generator (seeded by its data parameters, so the stream
    does not depend on the other replicas) and labels them with its target.

    Returns ``sample(ids) -> (x: (len(ids), B, d), y: (len(ids), B))``."""
    gens = [
        generator(derive_seed({**data_params(c, seed), "batch_size": c["batch_size"]}, "batches"))
        for c, seed in replicas
    ]
    targets = [make_target(c, seed) for c, seed in replicas]
    size, d = replicas[0][0]["batch_size"], replicas[0][0]["d"]

    def sample(ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        xs = [sphere(size, d, gens[int(g)]) for g in ids]
        ys = [targets[int(g)](x) for g, x in zip(ids, xs)]
        return (
            torch.stack(xs).to(device=device, dtype=dtype),
            torch.stack(ys).to(device=device, dtype=dtype),
        )

    return sample
