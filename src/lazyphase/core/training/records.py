"""Host-side records of every replica, turned into the :class:`TrainResult` at the end."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lazyphase.core.training.results import Event, Problem, TrainResult, WorkingRows

if TYPE_CHECKING:
    from lazyphase.core.training.schedule import TrainPlan


class Records:
    """Full-size (all R replicas) host copies of the latest value of every recorded quantity, and
    the per-replica outcome (status, final step and ``Δθ``, best test loss, tail average).

    Working replicas overwrite their rows at each evaluation; a stopped replica's row keeps its
    final value, which is what later snapshots show for it (it is frozen)."""

    def __init__(self, problem: Problem, plan: TrainPlan, weights: bool) -> None:
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
        self.w_now = [to_host(p).copy() for p in p0] if weights else None
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
            getattr(self, key)[ids] = to_host(val)

    def update_theta(self, ids: np.ndarray, theta: torch.Tensor) -> None:
        arr = to_host(theta)
        if self.theta is None:
            self.theta = np.zeros((len(self.status), *arr.shape[1:]))
        self.theta[ids] = arr

    def add_tail(self, ids: np.ndarray, loss: torch.Tensor) -> None:
        self.tail_sum[ids] += loss.detach().cpu().numpy()
        self.tail_cnt[ids] += 1

    def record(
        self,
        ws: WorkingRows,
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
                self.w_now[li][ws.ids] = to_host(p)
        if step in self.plan.grams or stops:
            every = step in self.plan.grams
            sel = torch.arange(len(ws.ids)) if every else torch.tensor(sorted(stops))
            self.update_theta(ws.ids[sel.numpy()], ws.ntk(sel))

    def stop(self, ws: WorkingRows, stops: Mapping[int, str], step: int) -> None:
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


def to_host(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()
