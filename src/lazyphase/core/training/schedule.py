"""When the trainer snapshots and tests: the log-spaced schedule and the cell keys it reads."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


def log_schedule(max_steps: int, n: int) -> np.ndarray:
    """About ``n`` log-spaced integer steps in ``[0, max_steps]``, always with 0 and max_steps."""
    if max_steps == 0:
        return np.array([0], dtype=np.int64)
    pts = np.unique(np.round(np.geomspace(1, max_steps + 1, max(n - 1, 1)) - 1).astype(np.int64))
    return np.unique(np.concatenate([[0], pts, [max_steps]]))


@dataclass(frozen=True)
class TrainPlan:
    """The cell keys :func:`~lazyphase.core.train.train` reads, parsed once; ``snaps``/``grams``: the snapshot steps."""

    max_steps: int
    tol: float
    factor: float
    max_halvings: int
    #: ``halve`` (undo a rising step, halve η) or ``none`` (keep every finite step: catapults)
    safeguard: str
    #: ``safeguard: none``: a loss above ``diverge_factor · R(θ0)`` (or not finite) is diverged
    diverge_factor: float
    patience: int | None
    min_delta: float
    test_every: int | None
    tail_from: int
    snaps: set[int]
    grams: set[int]
    sgd: bool

    @classmethod
    def of(cls, settings: Mapping[str, Any], sgd: bool) -> TrainPlan:
        max_steps = int(settings["max_steps"])
        factor = float(settings["safeguard_factor"])
        grams = set(log_schedule(max_steps, settings["n_gram_snapshots"] + 2).tolist())
        return cls(
            max_steps=max_steps,
            tol=float(settings["tol_rel"]),
            # losses of different batches: only a non-finite loss triggers the safeguard
            factor=math.inf if sgd else factor,
            max_halvings=settings["max_halvings"],
            safeguard=settings.get("safeguard", "halve"),
            diverge_factor=float(settings.get("diverge_factor", 1e6)),
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
