"""Empirical per-layer NTK by the exact layer identity, and its normalization.

For a bias-free or biased fully connected network with scalar output,
``∂f/∂W[l] = B_l ⊗ H_{l−1}`` per point, hence

    Θ[l] = (B_l B_lᵀ) ⊙ (H_{l−1} H_{l−1}ᵀ),        Θ = Σ_l Θ[l],

with ``H_{l−1}`` the layer's inputs and ``B_l = ∂f/∂z_l`` from one batched backward pass
(``B_{L+1} = 1/α``). Cost ``O(n² m)`` per layer, memory ``O(n m)``: the Jacobian is never formed.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lazyphase.core import activations
from lazyphase.core.model import Scales, backward, forward


def per_layer_ntk(
    params: Sequence[torch.Tensor],
    x: torch.Tensor,
    act: activations.Activation,
    alpha: torch.Tensor,
    bias: bool,
    masks: Sequence[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """Per-layer empirical NTK of R replicas.

    Args:
        params: ``[W1, …, WL, a]``, leading replica axis R.
        x: ``(R, n, d)``.
        act, alpha, bias: as in :func:`lazyphase.core.model.forward`.
        masks: trainable-entry masks (:func:`lazyphase.core.model.layer_masks`); a block-diagonal
            layer sums the identity over its blocks, so its zero blocks are not parameters.

    Returns:
        ``(R, L+1, n, n)``: ``Θ[l]_{ij} = ⟨∂_{W[l]} f(x_i), ∂_{W[l]} f(x_j)⟩``, index ``l−1``.
    """
    fwd = forward(params, x, act, alpha, bias)
    signals = backward(params, fwd, act, alpha, torch.ones_like(fwd.out))
    masks = masks or [None] * len(signals)
    layers = []
    for b, h, mask in zip(signals, fwd.inputs, masks):
        if mask is None:
            layers.append(_gram(b) * _gram(h))
            continue
        total = b.new_zeros(b.shape[0], b.shape[1], b.shape[1])
        for rows in _row_blocks(mask):
            cols = torch.nonzero(mask[rows[0]]).flatten().to(h.device)
            total += _gram(b[:, :, rows]) * _gram(h.index_select(2, cols))
        layers.append(total)
    return torch.stack(layers, dim=1)


def cross_ntk(
    params: Sequence[torch.Tensor],
    x1: torch.Tensor,
    x2: torch.Tensor,
    act: activations.Activation,
    alpha: torch.Tensor,
    bias: bool,
    masks: Sequence[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """Per-layer cross-kernel ``Θ[l](x1, x2)`` by the same layer identity as
    :func:`per_layer_ntk`: ``(B_l(x1) B_l(x2)ᵀ) ⊙ (H_{l−1}(x1) H_{l−1}(x2)ᵀ)``.

    Args:
        x1: ``(R, n1, d)``; x2: ``(R, n2, d)``; the rest as in :func:`per_layer_ntk`.

    Returns:
        ``(R, L+1, n1, n2)``; ``cross_ntk(p, x, x, …)`` equals ``per_layer_ntk(p, x, …)``.
    """
    sides = []
    for x in (x1, x2):
        fwd = forward(params, x, act, alpha, bias)
        sides.append((backward(params, fwd, act, alpha, torch.ones_like(fwd.out)), fwd.inputs))
    (b1s, h1s), (b2s, h2s) = sides
    masks = masks or [None] * len(b1s)
    layers = []
    for b1, b2, h1, h2, mask in zip(b1s, b2s, h1s, h2s, masks):
        if mask is None:
            layers.append(_cross(b1, b2) * _cross(h1, h2))
            continue
        total = b1.new_zeros(b1.shape[0], b1.shape[1], b2.shape[1])
        for rows in _row_blocks(mask):
            cols = torch.nonzero(mask[rows[0]]).flatten().to(h1.device)
            total += _cross(b1[:, :, rows], b2[:, :, rows]) * _cross(
                h1.index_select(2, cols), h2.index_select(2, cols)
            )
        layers.append(total)
    return torch.stack(layers, dim=1)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.bmm(a, b.transpose(1, 2))


def _gram(a: torch.Tensor) -> torch.Tensor:
    return torch.bmm(a, a.transpose(1, 2))


def _row_blocks(mask: torch.Tensor) -> list[torch.Tensor]:
    """Group the rows of a block-diagonal mask by their column pattern."""
    groups: dict[bytes, list[int]] = {}
    for r in range(mask.shape[0]):
        groups.setdefault(mask[r].numpy().tobytes(), []).append(r)
    return [torch.tensor(v) for v in groups.values()]


def normalization(scales: Sequence[Scales], m: int) -> torch.Tensor:
    """Factors ``m β_l² / κ²`` with ``G[l] = factor_l · Θ[l]``. Shape ``(R, L+1)``, float64."""
    return torch.tensor(
        [[m * b * b / (sc.kappa**2) for b in sc.betas] for sc in scales], dtype=torch.float64
    )


def layer_sum(per_layer: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``Σ_l w_l Θ[l]``: ``per_layer (R, L+1, a, b)`` summed over layers with ``weights (R, L+1)``
    (the per-layer step factors ``r_l``: the kernel of the dynamics, docs/conventions.md §7);
    ``None``: the plain sum ``Θ``. Returns ``(R, a, b)``."""
    if weights is None:
        return per_layer.sum(dim=1)
    return (per_layer * weights.to(per_layer)[:, :, None, None]).sum(dim=1)
