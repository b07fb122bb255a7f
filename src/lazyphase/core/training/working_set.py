"""The replicas still training, as stacked tensors that lose rows when replicas stop."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from lazyphase.core.kernels import per_layer_ntk
from lazyphase.core.model import backward, descend, forward
from lazyphase.core.training.results import Problem


def squared_error(
    f: torch.Tensor, f0: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    e = f - f0 - y
    return e, 0.5 * (e * e).mean(dim=1).to(torch.float64)


class WorkingSet:
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
        self.prob = select_problem(self.prob, keep)
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
        self.err, loss = squared_error(self.fwd.out, prob.f0_train, prob.y_train)
        return loss

    def test_loss(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """The test losses of the working replicas (or of their subset ``rows``) at ``params``."""
        p = self.prob
        if rows is None:
            return squared_error(p.outputs(self.params, p.x_test), p.f0_test, p.y_test)[1]
        ft = forward([q[rows] for q in self.params], p.x_test[rows], p.act, p.alpha[rows], p.bias)
        return squared_error(ft.out, p.f0_test[rows], p.y_test[rows])[1]

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
        descend(self.fwd, signals, self.delta, self.spare, self.prob.masks, self.prob.layer_lr)
        self.delta, self.spare = self.spare, self.delta
        self.t = self.t + self.eta_used

    def drop(self, rows: Mapping[int, str]) -> None:
        """Remove the working rows ``rows`` (the keys) from the working set."""
        keep = torch.tensor([r for r in range(len(self.ids)) if r not in rows], dtype=torch.long)
        keep_d = keep.to(self.dev)
        self.ids = self.ids[keep.numpy()]
        self.prob = select_problem(self.prob, keep_d)
        self.fwd = select_forward(self.fwd, keep_d)
        for name in self._LAYERS:
            setattr(self, name, [x[keep_d] for x in getattr(self, name)])
        for name in self._ROWS:
            setattr(self, name, getattr(self, name)[keep_d])


def select_problem(prob: Problem, keep: torch.Tensor) -> Problem:
    return Problem(
        params0=[p[keep] for p in prob.params0],
        act=prob.act,
        masks=prob.masks,
        sampler=prob.sampler,
        layer_lr=None if prob.layer_lr is None else prob.layer_lr[keep],
        alpha=prob.alpha[keep],
        bias=prob.bias,
        **{
            k: getattr(prob, k)[keep]
            for k in ("x_train", "y_train", "x_test", "y_test", "x_kernel", "f0_train", "f0_test")
        },
    )


def select_forward(fwd: Any, keep: torch.Tensor) -> Any:
    fwd.out = fwd.out[keep]
    fwd.inputs = [h[keep] for h in fwd.inputs]
    fwd.pre = [z[keep] for z in fwd.pre]
    return fwd
