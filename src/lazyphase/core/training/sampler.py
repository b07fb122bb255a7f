"""Population SGD: fresh training batches per replica, from per-replica generators."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lazyphase.core.data import data_params, derive_seed, generator, make_target, sphere


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
