"""The coordinate check of the μP literature (Yang & Hu 2021; docs/conventions.md §7): how much
the pre-activations of every layer move in the first ``k`` steps, as the width grows.

One network of :mod:`lazyphase.core.model` in an abc-parameterization (effective stds
``β_l`` and per-layer steps ``η r_l``, :mod:`lazyphase.core.parameterization`) takes ``k``
full-batch gradient steps of a width-independent base step ``η`` on fixed data; the size of
the update of layer ``l``'s pre-activations ``z_l = W[l] h_{l−1}`` (``z_{L+1} = f``) is the
root mean square over inputs and neurons of ``z_l(θ_k) − z_l(θ_0)``. μP keeps every one O(1)
in ``m``; SP's output grows like ``m``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lazyphase.core import activations
from lazyphase.core import parameterization as abc
from lazyphase.core.data import generator, sphere
from lazyphase.core.model import backward, descend, forward, standard_normal_init


def preactivations(fwd: Any) -> list[torch.Tensor]:
    """``[z_1, …, z_L, f]`` of one forward pass: ``z_l: (R, n, m)``, ``f: (R, n, 1)``."""
    return [*fwd.pre, fwd.out[..., None]]


def update_sizes(
    spec: str | Mapping[str, Any],
    m: int,
    *,
    depth: int = 2,
    d: int = 8,
    n: int = 32,
    steps: int = 3,
    lr: float = 1e-4,
    seed: int = 0,
    activation: str = "relu",
) -> np.ndarray:
    """``(L+1,)`` RMS pre-activation updates ``‖z_l(θ_k) − z_l(θ_0)‖_rms`` after ``steps`` GD
    steps of base step ``lr`` on ``R = (1/2n) Σ (f − f(θ0) − y)²`` (the project's
    ``subtract_initial`` centering; float64, CPU).

    Data: ``n`` inputs on ``S^{d−1}`` and the target ``y = x_1`` (first coordinate), drawn from
    ``seed`` (the same for every width); the normal draw of the weights from ``seed`` and ``m``.
    """
    p = abc.resolve(spec, depth)
    act = activations.get(activation)
    x = sphere(n, d, generator(10_000 + seed))[None]
    y = x[..., 0]
    draw = standard_normal_init(
        {"m": m, "depth": depth, "d": d, "bias": False, "centering": "none"}, seed
    )
    params = [(w * b)[None] for w, b in zip(draw, abc.effective_stds(p, m))]
    rates = torch.tensor([abc.layer_rates(p, m)], dtype=torch.float64)
    alpha = torch.ones(1, dtype=torch.float64)
    fwd = forward(params, x, act, alpha, False)
    z0, f0 = preactivations(fwd), fwd.out
    for _ in range(steps):
        fwd = forward(params, x, act, alpha, False)
        # the residual of f − f(θ0): the same start e = −y at every width, so the sizes do not
        # carry the m-dependence of the initial output (O(1) in SP, m^{-1/2} in μP)
        signals = backward(params, fwd, act, alpha, lr * (fwd.out - f0 - y) / n)
        new = [torch.empty_like(q) for q in params]
        descend(fwd, signals, params, new, None, rates)
        params = new
    zk = preactivations(forward(params, x, act, alpha, False))
    return np.array([float((b - a).pow(2).mean().sqrt()) for a, b in zip(z0, zk)])


def width_slope(widths: Sequence[int], sizes: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of ``log size`` against ``log m`` and the spread
    ``size(m_max) / size(m_min)``. ``sizes: (len(widths),)``."""
    order = np.argsort(widths)
    w, s = np.asarray(widths, dtype=float)[order], np.asarray(sizes, dtype=float)[order]
    slope = float(np.polyfit(np.log(w), np.log(s), 1)[0])
    return slope, float(s[-1] / s[0])
