"""Condensation at depth: the effective number of directions of a layer's incoming weights
(docs/conventions.md §6).

For the rows ``w_1 … w_m ∈ R^d`` of a weight matrix (``W[l]``: the incoming weights of the
``m`` neurons of layer ``l``), with ``u_i = w_i/‖w_i‖`` and ``C = (1/m) Σ_i u_i u_iᵀ`` (``tr C = 1``):

    n_eff = (tr C)² / tr(C²) = 1 / tr(C²) = m² / Σ_{i,j} (u_i·u_j)²

invariant to the sign and the scale of every row, and to repeating every row the same number of
times (the duplicated neurons of symmetric centering). Exact values:

* ``k`` mutually orthogonal directions, each carried by the same number of rows (any signs and
  norms): ``n_eff = k``. With fractions ``p_j`` of the rows: ``1/Σ_j p_j²`` (≤ k).
* Non-orthogonal directions count less: ``n_eff = 1/Σ_{j,k} p_j p_k cos²θ_jk``; two equally
  weighted directions at angle θ give ``2/(1 + cos²θ)``.
* ``m`` independent rows uniform on ``S^{d−1}`` (any Gaussian matrix with i.i.d. rows
  ``N(0, I)``): ``E (u_i·u_j)² = 1/d`` for ``i ≠ j``, so ``E tr(C²) = 1/d + (1/m)(1 − 1/d)`` and
  ``n_eff ≈ m d/(m + d − 1)``: about ``d`` for ``m ≫ d``, ``m`` for ``m ≪ d`` (about its rank,
  less a finite-sample correction; ``m/2`` for a square ``m × m`` hidden layer).
"""

from __future__ import annotations

import numpy as np
import torch


def direction_second_moment(w: np.ndarray | torch.Tensor) -> np.ndarray:
    """``tr(C²)`` of the normalized rows of ``w: (..., m, d)``; shape ``(...)``, float64.

    Uses the ``d × d`` matrix ``C`` or the ``m × m`` cosine matrix, whichever is smaller
    (``‖UᵀU‖_F = ‖UUᵀ‖_F``). Raises ``ValueError`` naming the first zero row (no direction)."""
    a = np.asarray(w.detach().cpu() if isinstance(w, torch.Tensor) else w, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"w must be (..., m, d), got shape {a.shape}")
    norms = np.linalg.norm(a, axis=-1, keepdims=True)
    if (bad := np.argwhere(norms[..., 0] == 0)).size:
        raise ValueError(f"w has a zero row at index {tuple(int(i) for i in bad[0])}")
    u = a / norms
    m, d = a.shape[-2:]
    small = np.swapaxes(u, -1, -2) @ u if d <= m else u @ np.swapaxes(u, -1, -2)
    return np.sum(small * small, axis=(-2, -1)) / (m * m)


def effective_directions(w: np.ndarray | torch.Tensor) -> np.ndarray:
    """``n_eff = 1/tr(C²)`` of the rows of ``w: (..., m, d)`` (module docstring); ``(...)``,
    between 1 (every row on one line) and ``min(m, d)`` (equally weighted orthogonal rows)."""
    return 1.0 / direction_second_moment(w)


def expected_random_second_moment(m: int, d: int) -> float:
    """``E tr(C²) = 1/d + (1/m)(1 − 1/d)`` for ``m`` independent rows uniform on ``S^{d−1}``."""
    return 1.0 / d + (1.0 - 1.0 / d) / m
