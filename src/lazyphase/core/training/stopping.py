"""Who stops and why: the step safeguard (undo, halve, diverge) and the stop rules."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch

from lazyphase.core.training.results import Event, WorkingRows

if TYPE_CHECKING:
    from lazyphase.core.training.schedule import TrainPlan


class Safeguard:
    """Undoes a step whose loss rose by more than ``factor`` (or is not finite) and halves that
    replica's step size; after ``max_halvings`` halvings the replica is diverged. With
    ``safeguard: none`` no step is undone unless the replica diverges (:meth:`_check_unguarded`). ``halvings``
    (per global replica) and ``events`` are kept over the whole run."""

    def __init__(self, n_rep: int, plan: TrainPlan) -> None:
        self.factor, self.max_halvings = plan.factor, plan.max_halvings
        self.mode, self.diverge_factor = plan.safeguard, plan.diverge_factor
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

    def check(self, ws: WorkingRows, loss: torch.Tensor, step: int) -> tuple[bool, dict[int, str]]:
        """Judge the training losses ``loss: (R',)`` of ``ws``; the first ones become ``loss0``.

        Returns ``(bad, stops)``: whether a row was undone (then ``ws`` holds the restored state,
        not the one ``loss`` was computed at) and ``{working row: "diverged"}``."""
        if ws.loss0 is None:
            ws.loss0 = loss.clone()
            bad0 = torch.nonzero(~torch.isfinite(ws.loss0)).flatten().tolist()
            return False, {r: "diverged" for r in bad0}
        assert ws.last_loss is not None
        if self.mode == "none":
            return self._check_unguarded(ws, loss, step)
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

    def _check_unguarded(
        self, ws: WorkingRows, loss: torch.Tensor, step: int
    ) -> tuple[bool, dict[int, str]]:
        """``safeguard: none``: every finite step is kept (a catapult's loss spike included); a
        loss that is not finite or above ``diverge_factor · R(θ0)`` makes the replica diverged,
        frozen at its state before that step (an event with ``lr_new = lr_old``)."""
        assert ws.loss0 is not None and ws.last_loss is not None
        bad = ~torch.isfinite(loss) | (loss > self.diverge_factor * ws.loss0)
        if not bool(bad.any()):
            return False, {}
        stops: dict[int, str] = {}
        for r in torch.nonzero(bad).flatten().tolist():
            eta = float(ws.eta[r])
            ev = Event(
                int(ws.ids[r]), step, "diverged", eta, eta, float(ws.last_loss[r]), float(loss[r])
            )
            self.events.append(ev)
            stops[r] = "diverged"
        ws.undo(bad)
        return True, stops


def stop_rules(
    ws: WorkingRows,
    plan: TrainPlan,
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
