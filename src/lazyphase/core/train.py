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

import dataclasses
import glob
import logging
import math
import os
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
from lazyphase.core.linearized import Linearized, linearize
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
    sampler: BatchSampler | None = None

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


@dataclass(frozen=True)
class _Plan:
    """The cell keys :func:`train` reads, parsed once; ``snaps``/``grams``: the snapshot steps."""

    max_steps: int
    tol: float
    factor: float
    max_halvings: int
    patience: int | None
    min_delta: float
    test_every: int | None
    tail_from: int
    snaps: set[int]
    grams: set[int]
    sgd: bool

    @classmethod
    def of(cls, settings: Mapping[str, Any], sgd: bool) -> _Plan:
        max_steps = int(settings["max_steps"])
        factor = float(settings["safeguard_factor"])
        grams = set(log_schedule(max_steps, settings["n_gram_snapshots"] + 2).tolist())
        return cls(
            max_steps=max_steps,
            tol=float(settings["tol_rel"]),
            # losses of different batches: only a non-finite loss triggers the safeguard
            factor=math.inf if sgd else factor,
            max_halvings=settings["max_halvings"],
            patience=settings["patience"],
            min_delta=float(settings["delta"]),
            test_every=settings.get("test_every"),
            tail_from=max_steps - int(settings.get("tail_steps", 2000)),
            snaps=set(log_schedule(max_steps, settings["n_snapshots"]).tolist()),
            grams={0} if settings["n_gram_snapshots"] == 0 else grams,
            sgd=sgd,
        )

    def needs_test(self, step: int) -> bool:
        """Whether the test loss of every working replica is evaluated at ``step``."""
        every = self.test_every is not None and step % self.test_every == 0
        return step in self.snaps or self.patience is not None or step >= self.max_steps or every


class _WorkingSet:
    """The replicas still training: row ``r`` of every tensor here belongs to the replica with
    global index ``ids[r]``, and :meth:`drop` removes rows from all of them at once.

    Shapes (``R'`` working replicas): ``eta, eta_used, t, best_test, wait, loss0, last_loss:
    (R',)``; ``norm0: (R', L+1)``; ``err: (R', n)``; per layer ``(R', …)``: ``p0``, ``delta``
    (``Δθ``), ``spare`` (the ``Δθ`` before the last step, which :meth:`undo` restores; the next
    step writes into it), ``buf`` (storage of ``params = θ0 + Δθ``). ``fwd``, ``params`` and
    ``err`` are those of the last :meth:`train_loss`, which :meth:`step` descends from.
    """

    #: per-replica tensors (``drop`` re-indexes them, with ``ids``, ``prob`` and ``fwd``)
    _ROWS = ("err", "norm0", "eta", "eta_used", "t", "best_test", "wait", "loss0", "last_loss")
    _LAYERS = ("p0", "delta", "spare", "buf", "params")

    def __init__(self, problem: Problem, lr0: torch.Tensor) -> None:
        p0 = problem.params0
        self.dev = p0[0].device
        self.ids = np.arange(p0[0].shape[0])  # global indices of the working set
        self.prob = problem
        self.p0 = p0
        self.delta = [torch.zeros_like(p) for p in p0]
        self.spare = [torch.zeros_like(p) for p in p0]
        self.buf = [torch.empty_like(p) for p in p0]
        self.params: list[torch.Tensor] = []
        self.fwd: Any = None
        self.err: torch.Tensor | None = None
        self.norm0 = torch.stack([p.flatten(1).norm(dim=1) for p in p0], dim=1).to(torch.float64)
        self.eta = lr0.to(device=self.dev, dtype=torch.float64).clone()
        self.eta_used = torch.zeros_like(self.eta)  # the step size that made Δθ out of spare
        self.t = torch.zeros_like(self.eta)
        self.best_test = torch.full_like(self.eta, math.inf)
        self.wait = torch.zeros(len(self.ids), dtype=torch.int64, device=self.dev)
        self.loss0: torch.Tensor | None = None
        self.last_loss: torch.Tensor | None = None

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue exactly: the working ids, ``Δθ`` and its previous
        value (which :meth:`undo` restores) and every per-replica row except ``err`` (recomputed
        by the next :meth:`train_loss`); tensors on the CPU."""
        out: dict[str, Any] = {"ids": self.ids.copy()}
        out["delta"] = [d.cpu() for d in self.delta]
        out["spare"] = [d.cpu() for d in self.spare]
        for name in self._ROWS[1:]:
            val = getattr(self, name)
            out[name] = None if val is None else val.cpu()
        return out

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state` (``self`` as built from the same problem)."""
        self.ids = np.asarray(state["ids"])
        keep = torch.as_tensor(self.ids, dtype=torch.long, device=self.dev)
        self.prob = _select(self.prob, keep)
        self.p0 = self.prob.params0
        self.delta = [d.to(self.dev) for d in state["delta"]]
        self.spare = [d.to(self.dev) for d in state["spare"]]
        self.buf = [torch.empty_like(p) for p in self.p0]
        for name in self._ROWS[1:]:
            val = state[name]
            setattr(self, name, None if val is None else val.to(self.dev))

    def draw_batch(self) -> None:
        """Population SGD: a fresh training batch for every working replica."""
        assert self.prob.sampler is not None
        x, y = self.prob.sampler(self.ids)
        # a new Problem: the caller's keeps its training set (and a resumed run equals this one)
        self.prob = dataclasses.replace(self.prob, x_train=x, y_train=y)

    def train_loss(self) -> torch.Tensor:
        """The training losses ``(R',)`` at ``θ0 + Δθ``; keeps ``params``, ``fwd`` and ``err``."""
        prob = self.prob
        self.params = [torch.add(a, b, out=c) for a, b, c in zip(self.p0, self.delta, self.buf)]
        self.fwd = forward(self.params, prob.x_train, prob.act, prob.alpha, prob.bias)
        self.err, loss = _loss(self.fwd.out, prob.f0_train, prob.y_train)
        return loss

    def test_loss(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The test losses of the working replicas (or of their subset ``rows``) at ``params``."""
        p = self.prob
        if rows is None:
            return _loss(p.outputs(self.params, p.x_test), p.f0_test, p.y_test)[1]
        ft = forward([q[rows] for q in self.params], p.x_test[rows], p.act, p.alpha[rows], p.bias)
        return _loss(ft.out, p.f0_test[rows], p.y_test[rows])[1]

    def rd(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Relative displacements ``(R', L+1)`` (or of the subset ``rows``)."""
        dl = self.delta if rows is None else [d[rows] for d in self.delta]
        n0 = self.norm0 if rows is None else self.norm0[rows]
        return torch.stack([d.flatten(1).norm(dim=1) for d in dl], 1).to(torch.float64) / n0

    def ntk(self, rows: torch.Tensor) -> torch.Tensor:
        """Per-layer NTK ``(len(rows), L+1, n_k, n_k)`` at ``params`` (``rows`` on the CPU)."""
        p, sel = self.prob, rows.to(self.dev)
        sub = [q[sel] for q in self.params]
        return per_layer_ntk(sub, p.x_kernel[sel], p.act, p.alpha[sel], p.bias, p.masks)

    def undo(self, bad: torch.Tensor) -> None:
        """Restore the rows ``bad`` (a boolean ``(R',)``) to their state before the last step."""
        for i, d in enumerate(self.delta):
            self.delta[i] = torch.where(bad.view(-1, *([1] * (d.dim() - 1))), self.spare[i], d)
        self.t = torch.where(bad, self.t - self.eta_used, self.t)
        self.eta_used = torch.where(bad, torch.zeros_like(self.eta_used), self.eta_used)

    def step(self) -> None:
        """One gradient step of every working replica from the last :meth:`train_loss`."""
        assert self.err is not None
        self.eta_used = self.eta.clone()
        scaled = self.err * (self.eta_used.to(self.err.dtype)[:, None] / self.err.shape[1])
        signals = backward(self.params, self.fwd, self.prob.act, self.prob.alpha, scaled)
        descend(self.fwd, signals, self.delta, self.spare, self.prob.masks)
        self.delta, self.spare = self.spare, self.delta
        self.t = self.t + self.eta_used

    def drop(self, rows: Mapping[int, str]) -> None:
        """Remove the working rows ``rows`` (the keys) from the working set."""
        keep = torch.tensor([r for r in range(len(self.ids)) if r not in rows], dtype=torch.long)
        keep_d = keep.to(self.dev)
        self.ids = self.ids[keep.numpy()]
        self.prob = _select(self.prob, keep_d)
        self.fwd = _select_forward(self.fwd, keep_d)
        for name in self._LAYERS:
            setattr(self, name, [x[keep_d] for x in getattr(self, name)])
        for name in self._ROWS:
            setattr(self, name, getattr(self, name)[keep_d])


class _Safeguard:
    """Undoes a step whose loss rose by more than ``factor`` (or is not finite) and halves that
    replica's step size; after ``max_halvings`` halvings the replica is diverged. ``halvings``
    (per global replica) and ``events`` are kept over the whole run."""

    def __init__(self, n_rep: int, plan: _Plan) -> None:
        self.factor, self.max_halvings = plan.factor, plan.max_halvings
        self.halvings = [0] * n_rep
        self.events: list[Event] = []

    def state(self) -> dict[str, Any]:
        return {
            "halvings": list(self.halvings),
            "events": [dataclasses.astuple(e) for e in self.events],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.halvings = list(state["halvings"])
        self.events = [Event(*e) for e in state["events"]]

    def check(self, ws: _WorkingSet, loss: torch.Tensor, step: int) -> tuple[bool, dict[int, str]]:
        """Judge the training losses ``loss: (R',)`` of ``ws``; the first ones become ``loss0``.

        Returns ``(bad, stops)``: whether a row was undone (then ``ws`` holds the restored state,
        not the one ``loss`` was computed at) and ``{working row: "diverged"}``."""
        if ws.loss0 is None:
            ws.loss0 = loss.clone()
            bad0 = torch.nonzero(~torch.isfinite(ws.loss0)).flatten().tolist()
            return False, {r: "diverged" for r in bad0}
        assert ws.last_loss is not None
        bad = ~torch.isfinite(loss) | (loss > self.factor * ws.last_loss)
        if not bool(bad.any()):
            return False, {}
        stops: dict[int, str] = {}
        for r in torch.nonzero(bad).flatten().tolist():
            g = int(ws.ids[r])
            self.halvings[g] += 1
            kind = "diverged" if self.halvings[g] > self.max_halvings else "halve"
            old = float(ws.eta[r])
            ws.eta[r] = old / 2
            self.events.append(
                Event(g, step, kind, old, old / 2, float(ws.last_loss[r]), float(loss[r]))
            )
            if kind == "diverged":
                stops[r] = "diverged"
        ws.undo(bad)
        return True, stops


def _stop_rules(
    ws: _WorkingSet,
    plan: _Plan,
    step: int,
    loss: torch.Tensor,
    test_loss: torch.Tensor | None,
    stops: dict[int, str],
) -> None:
    """Add the converged, early-stopped and (at ``max_steps``) all other working rows to
    ``stops``; a reason already there (diverged) wins, then the first rule that matches."""
    for r in torch.nonzero(loss <= plan.tol * ws.loss0).flatten().tolist():
        stops.setdefault(r, "converged")
    if plan.patience is not None:
        improved = test_loss < ws.best_test - plan.min_delta
        ws.best_test = torch.where(improved, test_loss, ws.best_test)
        ws.wait = torch.where(improved, torch.zeros_like(ws.wait), ws.wait + 1)
        for r in torch.nonzero(ws.wait >= plan.patience).flatten().tolist():
            stops.setdefault(r, "early_stopped")
    if step >= plan.max_steps:
        for r in range(len(ws.ids)):
            stops.setdefault(r, "max_steps")


class _Records:
    """Full-size (all R replicas) host copies of the latest value of every recorded quantity, and
    the per-replica outcome (status, final step and ``Δθ``, best test loss, tail average).

    Working replicas overwrite their rows at each evaluation; a stopped replica's row keeps its
    final value, which is what later snapshots show for it (it is frozen)."""

    def __init__(self, problem: Problem, plan: _Plan, weights: bool) -> None:
        p0 = problem.params0
        n_rep, n_layers = p0[0].shape[0], len(p0)
        self.plan = plan
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
        self.status = ["max_steps"] * n_rep
        self.final_step = np.full(n_rep, plan.max_steps, dtype=np.int64)
        self.final_delta = [torch.zeros_like(p) for p in p0]
        self.best_seen = np.full(n_rep, np.inf)
        self.best_step = np.zeros(n_rep, dtype=np.int64)
        self.tail_sum = np.zeros(n_rep)
        self.tail_cnt = np.zeros(n_rep, dtype=np.int64)
        self.w_now = [_host(p).copy() for p in p0] if weights else None
        self.w_rows: list[list[np.ndarray]] = []

    def state(self) -> dict[str, Any]:
        """Every record so far (host arrays and lists; ``final_delta`` on the CPU)."""
        out = {k: v for k, v in vars(self).items() if k not in ("plan", "final_delta")}
        out["final_delta"] = [d.cpu() for d in self.final_delta]
        return out

    def restore(self, state: Mapping[str, Any]) -> None:
        dev = self.final_delta[0].device
        for key, val in state.items():
            setattr(self, key, val)
        self.final_delta = [d.to(dev) for d in state["final_delta"]]

    def update(self, ids: np.ndarray, **values: torch.Tensor) -> None:
        for key, val in values.items():
            getattr(self, key)[ids] = _host(val)

    def update_theta(self, ids: np.ndarray, theta: torch.Tensor) -> None:
        arr = _host(theta)
        if self.theta is None:
            self.theta = np.zeros((len(self.status), *arr.shape[1:]))
        self.theta[ids] = arr

    def add_tail(self, ids: np.ndarray, loss: torch.Tensor) -> None:
        self.tail_sum[ids] += loss.detach().cpu().numpy()
        self.tail_cnt[ids] += 1

    def record(
        self,
        ws: _WorkingSet,
        step: int,
        loss: torch.Tensor,
        test_loss: torch.Tensor | None,
        stops: Mapping[int, str],
    ) -> None:
        """Take the values of ``ws`` at ``step``: of every working replica when ``test_loss`` was
        evaluated, else of the stopping ones only (their final state, tested here); weights and
        per-layer NTK at their snapshot steps and for the stopping replicas."""
        if test_loss is not None:
            rows, tl = ws.ids, test_loss
            self.update(rows, t=ws.t, lr=ws.eta, train=loss, test=tl, rd=ws.rd())
        elif stops:
            sel = torch.tensor(sorted(stops), device=ws.dev)
            rows, tl = ws.ids[sel.cpu().numpy()], ws.test_loss(sel)
            self.update(rows, t=ws.t[sel], lr=ws.eta[sel], train=loss[sel], test=tl, rd=ws.rd(sel))
        if test_loss is not None or stops:
            tl_host = tl.detach().cpu().numpy()
            better = tl_host < self.best_seen[rows]
            self.best_seen[rows[better]] = tl_host[better]
            self.best_step[rows[better]] = step
        if self.w_now is not None and (step in self.plan.snaps or stops):
            for li, p in enumerate(ws.params):
                self.w_now[li][ws.ids] = _host(p)
        if step in self.plan.grams or stops:
            every = step in self.plan.grams
            sel = torch.arange(len(ws.ids)) if every else torch.tensor(sorted(stops))
            self.update_theta(ws.ids[sel.numpy()], ws.ntk(sel))

    def stop(self, ws: _WorkingSet, stops: Mapping[int, str], step: int) -> None:
        """The outcome of the working rows ``stops`` (before ``ws`` drops them)."""
        for r, why in stops.items():
            self.status[int(ws.ids[r])] = why
            self.final_step[int(ws.ids[r])] = step
        stopped = torch.tensor(sorted(stops), device=ws.dev)
        glob = torch.as_tensor(ws.ids[sorted(stops)], device=ws.dev)
        for final, d in zip(self.final_delta, ws.delta):
            final[glob] = d[stopped]

    def snapshot(self, step: int, done: bool) -> None:
        """Append the current rows at the (Gram) snapshot steps and at the end."""
        if step in self.plan.snaps or done:
            for key in self.rows:
                self.rows[key].append(getattr(self, key).copy())
            self.steps.append(step)
            if self.w_now is not None:
                self.w_rows.append([w.copy() for w in self.w_now])
        if step in self.plan.grams or done:
            assert self.theta is not None
            self.gram_rows.append(self.theta.copy())
            self.gram_steps.append(step)

    def result(self, problem: Problem, events: list[Event], start: float) -> TrainResult:
        def stack(key: str) -> np.ndarray:
            return np.stack(self.rows[key], axis=1)

        w = self.w_now
        cnt = self.tail_cnt
        return TrainResult(
            status=self.status,
            final_step=self.final_step,
            steps=np.asarray(self.steps, dtype=np.int64),
            t=stack("t"),
            lr=stack("lr"),
            train_loss=stack("train"),
            test_loss=stack("test"),
            rd=stack("rd"),
            gram_steps=np.asarray(self.gram_steps, dtype=np.int64),
            gram=np.stack(self.gram_rows, axis=1),
            params_final=[(a + b).detach() for a, b in zip(problem.params0, self.final_delta)],
            events=events,
            seconds=time.perf_counter() - start,
            best_test_loss=self.best_seen,
            best_test_step=self.best_step,
            tail_train_loss=np.where(cnt > 0, self.tail_sum / np.maximum(cnt, 1), np.nan),
            weights=(
                None
                if w is None
                else [np.stack([row[li] for row in self.w_rows], 1) for li in range(len(w))]
            ),
        )


def _host(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


class TrainingInterrupted(Exception):
    """Training stopped on request (a signal, or :attr:`Checkpointing.stop_at` in tests) after
    writing its checkpoint; ``signum`` is the signal (0 for ``stop_at``), ``step`` the step the
    checkpoint holds."""

    def __init__(self, signum: int, step: int, path: str) -> None:
        super().__init__(
            f"training interrupted (signal {signum}) at step {step}; checkpoint {path}"
        )
        self.signum, self.step, self.path = signum, step, path


def segments_text(history: list[dict[str, Any]]) -> str:
    """Training segments (:attr:`Checkpointing.history`, also saved in every checkpoint) as
    text: ``0->1200 (31.0s, signal 15), ...``; ``none`` when there are none."""
    return (
        ", ".join(
            f"{h['from']}->{h['to']} ({h['seconds']:.1f}s"
            + (f", signal {h['signal']})" if h["signal"] else ")")
            for h in history
        )
        or "none"
    )


@dataclass
class Checkpointing:
    """Checkpoints of :func:`train` (docs/checkpoints.md).

    ``path``: the checkpoint file (written atomically: a temporary name, then ``os.replace``);
    ``key``: identifies the cells and code it is valid for (a checkpoint with another key is
    refused with a warning and training starts over); ``every``: seconds between checkpoints;
    ``signal``: returns the number of a pending stop signal (0: none), checked every step: a
    checkpoint is written and :class:`TrainingInterrupted` raised; ``stop_at``: a test hook,
    the same at this step; ``provenance``: saved with the state.
    """

    path: str
    key: str
    every: float = 600.0
    signal: Callable[[], int] = lambda: 0
    stop_at: int | None = None
    #: saved with every checkpoint under ``"provenance"`` (the pipeline gives the code
    #: fingerprint and git describe of store/provenance.py; ``lazyphase inspect`` shows it)
    provenance: dict[str, Any] = field(default_factory=dict)
    #: filled by :func:`train`: the step it resumed from (None: started over), steps trained
    resumed_from: int | None = None
    steps_trained: int = 0
    #: the training segments of the run so far, one per job: ``{"from", "to"}`` steps,
    #: ``seconds`` of training in that job and ``signal`` (0: it was not stopped by a signal)
    history: list[dict[str, Any]] = field(default_factory=list)
    _first: int = field(default=0, repr=False)
    _last_save: float = field(default=0.0, repr=False)
    _began: float = field(default=0.0, repr=False)

    def load(self) -> dict[str, Any] | None:
        """The checkpoint's state if there is a valid one for ``key``, else None (saying why)."""
        if not os.path.exists(self.path):
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a torn or foreign file: start over
            log.warning("checkpoint %s unreadable (%s); starting over", self.path, exc)
            return None
        if not isinstance(state, dict) or state.get("format") != _CKPT_FORMAT:
            log.warning("checkpoint %s has another format; starting over", self.path)
            return None
        if state.get("key") != self.key:
            log.warning(
                "checkpoint %s refused: it was written for other cell parameters or another code "
                "fingerprint (key %s, this job %s); starting over",
                self.path, state.get("key"), self.key,
            )  # fmt: skip
            return None
        return state

    def resume(
        self, problem: Problem, ws: _WorkingSet, guard: _Safeguard, rec: _Records
    ) -> tuple[int, int, float]:
        """Restore the training state from a valid checkpoint; returns ``(step, last_draw,
        elapsed seconds)``, ``(0, -1, 0.0)`` when there is none (training starts over)."""
        state = self.load()
        self.resumed_from = None if state is None else int(state["step"])
        self.steps_trained = 0
        self._last_save = self._began = time.perf_counter()
        self.history = [] if state is None else list(state["history"])
        if state is None:
            self._first = 0
            return 0, -1, 0.0
        ws.restore(state["ws"])
        guard.restore(state["guard"])
        rec.restore(state["rec"])
        if problem.sampler is not None:
            problem.sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        self._first = int(state["step"])
        log.info(
            "resuming from checkpoint at step %d (%s); earlier segments: %s",
            self._first, self.path, self.segments(),
        )  # fmt: skip
        return self._first, int(state["last_draw"]), float(state["elapsed"])

    def after_step(
        self,
        step: int,
        last_draw: int,
        start: float,
        problem: Problem,
        ws: _WorkingSet,
        guard: _Safeguard,
        rec: _Records,
    ) -> None:
        """Called by :func:`train` after each step (``step`` is the next one): write a
        checkpoint when one is due or a stop is pending, then raise on a stop."""
        self.steps_trained = step - self._first
        signum = self.signal()
        stop = signum != 0 or step == self.stop_at
        now = time.perf_counter()
        if not stop and now - self._last_save < self.every:
            return
        segment = {"from": self._first, "to": step, "seconds": now - self._began, "signal": signum}
        self.save(
            {
                "history": [*self.history, segment],
                "step": step,
                "last_draw": last_draw,
                "elapsed": now - start,
                "ws": ws.state(),
                "guard": guard.state(),
                "rec": rec.state(),
                "sampler": None if problem.sampler is None else problem.sampler.state(),
                "torch_rng": torch.get_rng_state(),
            }
        )
        self._last_save = time.perf_counter()
        log.info(
            "checkpoint at step %d written in %.2fs (%s)", step, self._last_save - now, self.path
        )
        if stop:
            log.warning("stopping at step %d (signal %d); rerun to resume", step, signum)
            raise TrainingInterrupted(signum, step, self.path)

    def finish(self, step: int) -> None:
        """Called by :func:`train` at the end: the last segment joins :attr:`history`."""
        self.steps_trained = step - self._first
        seconds = time.perf_counter() - self._began
        self.history.append({"from": self._first, "to": step, "seconds": seconds, "signal": 0})

    def segments(self) -> str:
        """:attr:`history` as text: ``0->1200 (31.0s, signal 15), ...``."""
        return segments_text(self.history)

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` atomically (fsynced temporary file renamed into place)."""
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        tmp = f"{self.path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            torch.save(
                {"format": _CKPT_FORMAT, "key": self.key, "provenance": self.provenance, **state},
                fh,
            )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        """Delete the checkpoint (the run files are complete) and any temporary file a killed
        write left behind."""
        for tmp in glob.glob(f"{glob.escape(self.path)}.tmp-*"):
            os.remove(tmp)
        if os.path.exists(self.path):
            os.remove(self.path)
            log.info("removed checkpoint %s", self.path)


_CKPT_FORMAT = "lazyphase-train-checkpoint-1"


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
    plan = _Plan.of(settings, sgd=problem.sampler is not None)
    rec = _Records(problem, plan, weights=bool(settings.get("weight_snapshots")))
    guard = _Safeguard(n_rep, plan)
    ws = _WorkingSet(problem, lr0)
    step, last_log, last_draw = 0, start, -1
    report = progress_callback(progress)
    last_report = start
    if checkpoint is not None:
        step, last_draw, elapsed = checkpoint.resume(problem, ws, guard, rec)
        start -= elapsed
    while len(ws.ids):
        if plan.sgd and step > last_draw:  # not again when a step is retaken
            ws.draw_batch()
            last_draw = step
        loss = ws.train_loss()
        bad, stops = guard.check(ws, loss, step)
        if bad:
            if not stops:
                continue  # retake the step from the restored state at the halved step size
            # a diverged replica is frozen at its last good state: recompute the forward
            loss = ws.train_loss()
        ws.last_loss = loss.clone()
        if plan.tail_from <= step < plan.max_steps:
            rec.add_tail(ws.ids, loss)
        test_loss = ws.test_loss() if plan.needs_test(step) else None
        _stop_rules(ws, plan, step, loss, test_loss, stops)
        rec.record(ws, step, loss, test_loss, stops)
        if stops:
            rec.stop(ws, stops, step)
            ws.drop(stops)
        done = not len(ws.ids)
        rec.snapshot(step, done)
        now = time.perf_counter()
        if now - last_log > log_every or done:
            last_log = now
            _progress(step, plan.max_steps, len(ws.ids), n_rep, rec.train, now - start)
        if report is not None and (now - last_report > PROGRESS_EVERY or done):
            last_report = now
            report(Progress(step, plan.max_steps, len(ws.ids), n_rep, now - start))
        if done:
            break
        ws.step()
        step += 1
        if checkpoint is not None:
            checkpoint.after_step(step, last_draw, start, problem, ws, guard, rec)
    if checkpoint is not None:
        checkpoint.finish(step)
    return rec.result(problem, guard.events, start)


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


@dataclass(frozen=True)
class Progress:
    """What a ``progress`` callable of :func:`train` receives: the current ``step`` (of at most
    ``max_steps``), the replicas still ``active`` of ``replicas``, and ``elapsed`` seconds."""

    step: int
    max_steps: int
    active: int
    replicas: int
    elapsed: float


ProgressOption = bool | Callable[[Progress], None] | None
#: Seconds between two calls of a ``progress`` callable (and the last call when training ends).
PROGRESS_EVERY = 1.0


def progress_callback(progress: ProgressOption) -> Callable[[Progress], None] | None:
    """``None``/``False``: no callback; ``True``: :func:`print_progress`; a callable: itself."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return print_progress
    if callable(progress):
        return progress
    raise TypeError(f"progress must be a bool, a callable or None, not {progress!r}")


def print_progress(p: Progress) -> None:
    """One progress line on stderr (rewritten in place on a terminal)."""
    import sys

    tty = sys.stderr.isatty()
    end = "\n" if not tty or p.active == 0 else ""
    print(
        f"{chr(13) if tty else ''}lazyphase: step {p.step}/{p.max_steps}, {p.active}/{p.replicas} "
        f"replicas training, {p.elapsed:.0f} s",
        end=end, file=sys.stderr, flush=True,
    )  # fmt: skip


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
    #: the linearized (kernel) run of every replica (docs/conventions.md §5)
    linearized: Linearized | None = None


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
    reps = _replicas(cells, datasets)
    problem, f_train = _problem(first, reps, device)
    eigs = _theta0_eigs(problem, cells)
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


def _replicas(
    cells: Sequence[Mapping[str, Any]], datasets: Mapping[str, Dataset] | None
) -> list[Replica]:
    """One replica per seed of every cell, in order; data from ``datasets`` where it has them."""
    reps: list[Replica] = []
    for cell in cells:
        sc = resolve_scales(cell)
        for seed in cell["seeds"]:
            key = dataset_key(cell, seed)
            data = datasets[key] if datasets and key in datasets else make_dataset(cell, seed)
            reps.append(Replica(cell, seed, sc, data))
    return reps


def _problem(
    first: Mapping[str, Any], reps: Sequence[Replica], device: str | torch.device
) -> tuple[Problem, torch.Tensor]:
    """The stacked :class:`Problem` of ``reps`` (batch keys from ``first``) and the initial
    training outputs ``f_θ0(x_train): (R, n)``."""
    dtype = getattr(torch, first["dtype"])
    act = activations.get(first["activation"])
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
    return problem, f_train


def _theta0_eigs(problem: Problem, cells: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """``(R, n)`` float64 eigenvalues of the full NTK Gram at init; NaN where not computed."""
    n, p = cells[0]["n"], problem
    if n <= EIGS_MAX_N or any(c["lr_policy"] == "ntk" for c in cells):
        theta0 = per_layer_ntk(p.params0, p.x_train, p.act, p.alpha, p.bias, p.masks).sum(dim=1)
        return torch.linalg.eigvalsh(theta0.to(torch.float64)).cpu()
    # not needed by the step rule, and O(R n²) memory + O(R n³) time at n = 1000
    return torch.full((len(p.alpha), n), math.nan, dtype=torch.float64)


def batch_sampler(
    replicas: Sequence[tuple[Mapping[str, Any], int]], device: str | torch.device, dtype: Any
) -> BatchSampler:
    """Fresh batches of population SGD: replica ``i`` (a ``(cell, seed)``) draws ``batch_size``
    points on the sphere from its own generator (seeded by its data parameters, so the stream
    does not depend on the other replicas) and labels them with its target.

    Returns ``sample(ids) -> (x: (len(ids), B, d), y: (len(ids), B))``."""
    return BatchSampler(replicas, device, dtype)


class BatchSampler:
    """The sampler of :func:`batch_sampler`; :meth:`state` and :meth:`set_state` save and
    restore its generators (checkpoints)."""

    def __init__(
        self,
        replicas: Sequence[tuple[Mapping[str, Any], int]],
        device: str | torch.device,
        dtype: Any,
    ) -> None:
        self.gens = [
            generator(
                derive_seed({**data_params(c, seed), "batch_size": c["batch_size"]}, "batches")
            )
            for c, seed in replicas
        ]
        self.targets = [make_target(c, seed) for c, seed in replicas]
        self.size, self.d = replicas[0][0]["batch_size"], replicas[0][0]["d"]
        self.device, self.dtype = device, dtype

    def __call__(self, ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        xs = [sphere(self.size, self.d, self.gens[int(g)]) for g in ids]
        ys = [self.targets[int(g)](x) for g, x in zip(ids, xs)]
        return (
            torch.stack(xs).to(device=self.device, dtype=self.dtype),
            torch.stack(ys).to(device=self.device, dtype=self.dtype),
        )

    def state(self) -> list[torch.Tensor]:
        return [g.get_state() for g in self.gens]

    def set_state(self, states: Sequence[torch.Tensor]) -> None:
        for g, st in zip(self.gens, states):
            g.set_state(st)
