"""Test oracles kept out of the package: plain reference computations the tests compare with."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lazyphase.core.model import Forward


def gradients(
    fwd: Forward,
    deltas: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor | None] | None = None,
) -> list[torch.Tensor]:
    """Parameter gradients ``δ_lᵀ H_{l−1}`` summed over points: shapes of ``[W1, …, WL, a]``.
    Entries outside ``masks`` (see :func:`layer_masks`) get zero gradient."""
    grads = [torch.bmm(d.transpose(1, 2), h) for d, h in zip(deltas[:-1], fwd.inputs[:-1])]
    grads.append(torch.bmm(deltas[-1].transpose(1, 2), fwd.inputs[-1]).squeeze(1))
    if masks is not None:
        grads = [g if mk is None else g * mk.to(g.device, g.dtype) for g, mk in zip(grads, masks)]
    return grads
