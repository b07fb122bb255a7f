"""Cells → one stacked :class:`~lazyphase.core.training.results.Problem`: which cells may share
a batch, their replicas, stacked data and initial parameters, and the NTK spectrum at init."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from lazyphase.core import activations
from lazyphase.core.data import Dataset, dataset_key, make_dataset
from lazyphase.core.kernels import layer_sum, per_layer_ntk
from lazyphase.core.model import forward, init_params, layer_masks, layer_rates, resolve_scales
from lazyphase.core.training.results import Problem, Replica
from lazyphase.core.training.sampler import batch_sampler

BATCH_KEYS = (
    "m", "depth", "d", "n", "n_test", "n_kernel", "bias", "centering", "activation", "dtype",
    "tol_rel", "max_steps", "patience", "delta", "delta_on", "n_snapshots", "n_gram_snapshots",
    "safeguard_factor", "max_halvings", "model", "init", "test_every", "batch_size", "tail_steps",
    "weight_snapshots", "safeguard", "diverge_factor",
)  # fmt: skip


#: Step policies whose step size is set by λ_max of the NTK at init.
NEEDS_LAM_MAX = ("ntk", "critical")

#: Training sets up to this size always get the eigenvalues of the full NTK Gram at init (λ_min
#: for the linearized decay rate); above it only when the ntk step rule needs λ_max.
EIGS_MAX_N = 256


def check_batchable(cells: Sequence[Mapping[str, Any]]) -> None:
    """Raise ``ValueError`` naming the key when cells cannot share one batch."""
    for key in BATCH_KEYS:
        vals = {repr(c[key]) for c in cells}
        if len(vals) > 1:
            raise ValueError(f"cells in one batch must agree on {key!r}; got {sorted(vals)}")


def replicas_of(
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


def stacked_problem(
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
        layer_lr=stacked_rates(reps, device, dtype),
    )
    return problem, f_train


def stacked_rates(
    reps: Sequence[Replica], device: str | torch.device, dtype: torch.dtype
) -> torch.Tensor | None:
    """The per-layer step factors ``r_l`` of every replica ``(R, L+1)`` (docs/conventions.md §7),
    or ``None`` when they are all 1 (the trainer then takes the one-step-size path)."""
    rates = [layer_rates(r.cell) for r in reps]
    if all(v == 1.0 for row in rates for v in row):
        return None
    return torch.tensor(rates, dtype=dtype, device=device)


def theta0_eigs(problem: Problem, cells: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """``(R, n)`` float64 eigenvalues of the full NTK Gram at init (of ``Σ_l r_l Θ[l]`` with a
    parameterization's per-layer step factors, docs/conventions.md §7); NaN where not computed."""
    n, p = cells[0]["n"], problem
    if n <= EIGS_MAX_N or any(c["lr_policy"] in NEEDS_LAM_MAX for c in cells):
        per_layer = per_layer_ntk(p.params0, p.x_train, p.act, p.alpha, p.bias, p.masks)
        theta0 = layer_sum(per_layer, p.layer_lr)
        return torch.linalg.eigvalsh(theta0.to(torch.float64)).cpu()
    # not needed by the step rule, and O(R n²) memory + O(R n³) time at n = 1000
    return torch.full((len(p.alpha), n), math.nan, dtype=torch.float64)
