"""The L-hidden-layer network of docs/conventions.md §2, batched over R replicas.

    f_θ(x) = (1/α) · aᵀ σ(W[L] σ(… σ(W[1] x)))

Parameters are a list ``[W1, …, WL, a]`` with a leading replica axis: ``W1: (R, m, d')``,
``Wl: (R, m, m')``, ``a: (R, m')`` where ``d' = d + bias``, ``m' = m + bias`` (``bias`` appends a
constant 1 to every layer input). Initialization ``W[l]_ij ~ N(0, β_l²)`` with
``β_l = c_l m^{-γ_l}`` from the scheme; ``κ = m^{(L+1)/2} Π β_l / α = m^s``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lazyphase.core import activations
from lazyphase.core import parameterization as abc
from lazyphase.core.data import derive_seed, generator
from lazyphase.core.schemes import deep_gamma_h, luo_gamma_prime, uniform_gamma

#: Cell keys that define the standard-normal draw of the initialization (with the seed):
#: cells that differ only in s, scheme, activation or alpha share their normalized weights.
INIT_KEYS = ("m", "depth", "d", "bias", "centering")


@dataclass(frozen=True)
class Scales:
    """Per-layer standard deviations and the output scale of one replica.

    Attributes:
        betas: ``(β_1, …, β_{L+1})``.
        alpha: output divisor α.
        kappa: nominal ``κ = m^{(L+1)/2} Π β_l / α``.
    """

    betas: tuple[float, ...]
    alpha: float
    kappa: float

    def gammas(self, m: int) -> tuple[float, ...]:
        """Effective exponents ``γ_l = −log β_l / log m`` (nan for m = 1)."""
        if m == 1:
            return tuple(math.nan for _ in self.betas)
        return tuple(-math.log(b) / math.log(m) for b in self.betas)


def hidden_stds(scheme: str | Mapping[str, Any], m: int, d: int, depth: int) -> list[float]:
    """The hidden-layer standard deviations ``β_1 … β_L`` of a named or explicit scheme.

    ``luo:γ'`` and ``deep:γ_h`` set the layers from ``s`` and are handled by
    :func:`resolve_scales`.
    """
    if isinstance(scheme, Mapping):
        return [c * m ** (-g) for c, g in zip(scheme["c"][:depth], scheme["gamma"][:depth])]
    rest = [m**-0.5] * (depth - 1)
    if scheme == "lecun":
        return [1.0, *rest]
    if scheme == "kaiming":
        return [math.sqrt(2.0)] + [math.sqrt(2.0) * b for b in rest]
    if scheme == "xavier":
        return [math.sqrt(2.0 / (d + m)), *rest]
    if (g := uniform_gamma(scheme)) is not None:
        return [m ** (-g)] * depth
    raise ValueError(
        f"unknown scheme {scheme!r}; allowed: lecun, kaiming, xavier, uniform:γ, luo:γ', deep:γ_h"
    )


def natural_output_std(scheme: str | Mapping[str, Any], m: int, depth: int) -> float:
    """The output-layer std a scheme uses when κ is reached through α (``output_multiplier``)."""
    if isinstance(scheme, Mapping):
        if len(scheme["c"]) > depth:
            return scheme["c"][depth] * m ** (-scheme["gamma"][depth])
        return m**-0.5
    if scheme == "xavier":
        return math.sqrt(2.0 / (m + 1))
    if (g := uniform_gamma(scheme)) is not None:
        return m ** (-g)
    return m**-0.5


def layer_names(depth: int) -> list[str]:
    """``["W1", …, "WL", "a"]``: the names of the layers (index ``l−1`` is layer ``l``)."""
    return [f"W{i}" for i in range(1, depth + 1)] + ["a"]


def resolve_scales(cell: Mapping[str, Any], s: float | None = None) -> Scales:
    """The per-layer stds, α and κ of a cell (``s`` overrides ``cell['s']``).

    ``kappa_via = output_std``: α is ``cell['alpha']`` and β_{L+1} solves ``κ = m^s``;
    ``output_multiplier``: β_{L+1} is the scheme's natural output std and α solves it.
    ``luo:γ'`` (L = 1): ``β_2/β_1 = m^{-γ'}`` and ``m β_1 β_2/α = m^s``.
    ``deep:γ_h``: ``β_l = m^{-γ_h}`` for ``l = 2..L`` and ``β_1 = β_{L+1}`` with
    ``m^{(L+1)/2} β_1 β_{L+1} m^{-(L−1)γ_h} / α = m^s`` (docs/conventions.md §2, the deep
    phase-diagram coordinates); at ``L = 1`` it is ``luo:0``.
    """
    m, depth = cell["m"], cell["depth"]
    if cell.get("model", "conventions") == "chizat":
        return chizat_scales(cell)
    if cell.get("parameterization") is not None:
        return parameterized_scales(cell)
    s = cell["s"] if s is None else s
    kappa = float(m) ** s
    scheme = cell["scheme"]
    half = (depth + 1) / 2
    if (gp := luo_gamma_prime(scheme)) is not None:
        alpha = float(cell["alpha"])
        b1 = math.sqrt(float(m) ** (s - 1 + gp) * alpha)
        return Scales((b1, b1 * float(m) ** (-gp)), alpha, kappa)
    if (gh := deep_gamma_h(scheme)) is not None:
        return Scales(deep_stds(m, depth, s, gh, float(cell["alpha"])), float(cell["alpha"]), kappa)
    hidden = hidden_stds(scheme, m, cell["d"], depth)
    prod = math.prod(hidden)
    if cell["kappa_via"] == "output_std":
        alpha = float(cell["alpha"])
        out = kappa * alpha / (m**half * prod)
    else:
        out = natural_output_std(scheme, m, depth)
        alpha = m**half * prod * out / kappa
    return Scales((*hidden, out), alpha, kappa)


def parameterized_scales(cell: Mapping[str, Any]) -> Scales:
    """Scales of a cell with a ``parameterization`` (docs/conventions.md §7): the effective stds
    ``β_l = A_l B_l m^{-(a_l+b_l)}`` of every layer, the output layer included, and the divisor
    ``α = cell['alpha']`` (Atanasov et al.'s ``γ0``); ``κ`` follows (``s`` is derived)."""
    p = abc.resolve(cell["parameterization"], cell["depth"])
    m, alpha = cell["m"], float(cell["alpha"])
    betas = abc.effective_stds(p, m)
    return Scales(betas, alpha, float(m) ** ((cell["depth"] + 1) / 2) * math.prod(betas) / alpha)


def layer_rates(cell: Mapping[str, Any]) -> tuple[float, ...]:
    """Per-layer step factors ``r_l`` (the step of layer ``l`` is ``η r_l``): those of the
    cell's ``parameterization`` (docs/conventions.md §7), else 1 for every layer."""
    if cell.get("parameterization") is None:
        return (1.0,) * (cell["depth"] + 1)
    return abc.layer_rates(abc.resolve(cell["parameterization"], cell["depth"]), cell["m"])


def deep_stds(
    m: int, depth: int, s: float, gamma_h: float, alpha: float = 1.0
) -> tuple[float, ...]:
    """``(β_1, …, β_{L+1})`` of scheme ``deep:γ_h`` at ``s``: ``β_l = m^{-γ_h}`` (``l = 2..L``),
    ``β_1 = β_{L+1} = √α · m^{-γ_o}`` with ``γ_o = ((L+1)/2 − (L−1)γ_h − s)/2`` (so that
    ``κ = m^{(L+1)/2} Π β_l / α = m^s``)."""
    gamma_o = deep_outer_gamma(depth, s, gamma_h)
    outer = math.sqrt(alpha) * float(m) ** (-gamma_o)
    return (outer, *([float(m) ** (-gamma_h)] * (depth - 1)), outer)


def deep_outer_gamma(depth: int, s: float, gamma_h: float) -> float:
    """The exponent ``γ_o`` of the first and output layers' std in scheme ``deep:γ_h``:
    ``γ_o = ((L+1)/2 − (L−1)γ_h − s)/2`` (docs/conventions.md §2)."""
    return ((depth + 1) / 2 - (depth - 1) * gamma_h - s) / 2


def chizat_multiplier(cell: Mapping[str, Any]) -> float:
    """Chizat's output multiplier ``A = chizat_alpha · m^{−chizat_alpha_power}`` (model chizat)."""
    return float(cell["chizat_alpha"]) * float(cell["m"]) ** (-float(cell["chizat_alpha_power"]))


def chizat_scales(cell: Mapping[str, Any]) -> Scales:
    """Scales of Chizat's model ``f = A Σ_j a_j relu(b_j·x)``, ``a_j, b_j ~ τ·N(0, 1)``.

    It is the network of docs/conventions.md §2 with ``β_1 = β_2 = τ`` and divisor ``α = 1/A``, so
    ``κ = m τ² A`` (and ``s = log κ / log m``, see :func:`effective_s`)."""
    tau, mult = float(cell["tau"]), chizat_multiplier(cell)
    return Scales((tau, tau), 1.0 / mult, float(cell["m"]) * tau * tau * mult)


def effective_s(cell: Mapping[str, Any], scales: Scales) -> float:
    """``s = log κ / log m`` actually realized by the cell (``cell['s']`` unless model chizat or
    a ``parameterization``; then derived, nan at m = 1)."""
    derived = cell.get("model", "conventions") == "chizat" or cell.get("parameterization")
    if not derived:
        return float(cell["s"])
    m = cell["m"]
    return math.log(scales.kappa) / math.log(m) if m > 1 else math.nan


def layer_shapes(cell: Mapping[str, Any]) -> list[tuple[int, ...]]:
    """Shapes (without the replica axis) of ``[W1, …, WL, a]``."""
    m, b = cell["m"], int(cell["bias"])
    shapes: list[tuple[int, ...]] = [(m, cell["d"] + b)]
    shapes += [(m, m + b)] * (cell["depth"] - 1)
    return [*shapes, (m + b,)]


def symmetric_blocks(cell: Mapping[str, Any]) -> bool:
    """Whether the cell's hidden layers ``l ≥ 2`` are block-diagonal (two network copies)."""
    return cell["centering"] == "symmetric" and cell["depth"] > 1


def layer_masks(cell: Mapping[str, Any]) -> list[torch.Tensor | None]:
    """Trainable-entry masks of ``[W1, …, WL, a]`` (``None``: dense).

    With ``centering = symmetric`` and ``L > 1`` the network is two copies of a width-``m/2``
    network: hidden layers ``l ≥ 2`` are block-diagonal (each copy's bias column stays in its
    block) and their off-diagonal blocks are not parameters.
    """
    masks: list[torch.Tensor | None] = [None] * (cell["depth"] + 1)
    if not symmetric_blocks(cell):
        return masks
    m, b = cell["m"], int(cell["bias"])
    h = m // 2
    mask = torch.zeros(m, m + b, dtype=torch.bool)
    mask[:h, :h] = True
    mask[h:, h:m] = True
    if b:
        mask[:, m] = True
    for li in range(1, cell["depth"]):
        masks[li] = mask
    return masks


def standard_normal_init(cell: Mapping[str, Any], seed: int) -> list[torch.Tensor]:
    """The normalized weights ``θ̄`` of one replica (float64, CPU), ``N(0, 1)`` entries.

    ``centering = symmetric``: ``L = 1``: hidden neurons ``k < m/2`` are duplicated as ``k + m/2``
    and the copies' output weights negated (``f_θ0 ≡ 0``). ``L > 1``: two copies of a width-``m/2``
    network with opposite outputs: ``W1 = [W'; W']``, ``W[l] = blockdiag(W'_l, W'_l)`` for
    ``l ≥ 2`` (entries ``N(0, 2)`` so that each pre-activation has the variance it has in the
    uncentered width-``m`` network despite the fan-in ``m/2``), ``a = [a'; −a']``.
    """
    params = {k: cell[k] for k in INIT_KEYS}
    params["seed"] = seed
    if cell.get("init", "gaussian") != "gaussian":  # gaussian cells keep their historical seeds
        params["init"] = cell["init"]
    gen = generator(derive_seed(params, "init"))
    shapes = layer_shapes(cell)
    if params.get("init") == "circle":
        return circle_init(cell, gen)
    if cell["centering"] != "symmetric":
        return [torch.randn(*shape, generator=gen, dtype=torch.float64) for shape in shapes]
    m, b = cell["m"], int(cell["bias"])
    h = m // 2
    out = [torch.randn(h, shapes[0][1], generator=gen, dtype=torch.float64).repeat(2, 1)]
    for _ in shapes[1:-1]:
        block = math.sqrt(2.0) * torch.randn(h, h + b, generator=gen, dtype=torch.float64)
        w = torch.zeros(m, m + b, dtype=torch.float64)
        w[:h, :h], w[h:, h:m] = block[:, :h], block[:, :h]
        if b:
            w[:h, m], w[h:, m] = block[:, h], block[:, h]
        out.append(w)
    half = torch.randn(h, generator=gen, dtype=torch.float64)
    out.append(torch.cat([half, -half, torch.zeros(b, dtype=torch.float64)]))
    return out


def circle_init(cell: Mapping[str, Any], gen: torch.Generator) -> list[torch.Tensor]:
    """Chizat et al.'s cover-figure init (depth 1): input weights uniform on ``S^{d−1}``, output
    weights ``U[0, 1]``; with ``centering = symmetric`` neurons ``k + m/2`` copy ``k`` with
    negated output weight. Shapes ``[(m, d), (m,)]``, float64 (scaled by τ in :func:`init_params`).
    """
    m, d = cell["m"], cell["d"]
    sym = cell["centering"] == "symmetric"
    h = m // 2 if sym else m
    b = torch.randn(h, d, generator=gen, dtype=torch.float64)
    b = b / b.norm(dim=1, keepdim=True)
    a = torch.rand(h, generator=gen, dtype=torch.float64)
    if sym:
        return [b.repeat(2, 1), torch.cat([a, -a])]
    return [b, a]


def init_params(
    cell: Mapping[str, Any], scales: Sequence[Scales], seeds: Sequence[int]
) -> list[torch.Tensor]:
    """Initial parameters of R replicas ``[W1, …, WL, a]``, each ``(R, …)`` float64 on the CPU.

    Each replica's normalized draw is scaled straight into its slot of one buffer per layer (no
    stacked copy), which matters at ``m = 4096``, ``L ≥ 2`` where the copies cost as much as the
    draw."""
    bufs = [torch.empty((len(seeds), *shape), dtype=torch.float64) for shape in layer_shapes(cell)]
    for r, (sc, seed) in enumerate(zip(scales, seeds)):
        for li, w in enumerate(standard_normal_init(cell, seed)):
            torch.mul(w, sc.betas[li], out=bufs[li][r])
    return bufs


@dataclass
class Forward:
    """What the backward pass needs: layer inputs ``H_{l−1}`` (with the bias column) and
    pre-activations ``z_l``. ``inputs[l]``: ``(R, n, fan_in_l)``; ``pre[l]``: ``(R, n, m)``."""

    out: torch.Tensor
    inputs: list[torch.Tensor]
    pre: list[torch.Tensor]


def _with_bias(h: torch.Tensor, bias: bool) -> torch.Tensor:
    if not bias:
        return h
    return torch.cat([h, torch.ones(*h.shape[:-1], 1, dtype=h.dtype, device=h.device)], dim=-1)


def forward(
    params: Sequence[torch.Tensor],
    x: torch.Tensor,
    act: activations.Activation,
    alpha: torch.Tensor,
    bias: bool,
) -> Forward:
    """Batched forward pass.

    Args:
        params: ``[W1, …, WL, a]`` with leading replica axis R.
        x: inputs ``(R, n, d)``.
        act: the activation.
        alpha: ``(R,)`` output divisors.
        bias: append a constant 1 to every layer input.

    Returns:
        :class:`Forward` with ``out`` of shape ``(R, n)``.
    """
    inputs, pre = [], []
    h = x
    for w in params[:-1]:
        hin = _with_bias(h, bias)
        z = torch.bmm(hin, w.transpose(1, 2))
        inputs.append(hin)
        pre.append(z)
        h = act.fn(z)
    hin = _with_bias(h, bias)
    inputs.append(hin)
    out = _matvec(hin, params[-1]) / alpha[:, None]
    return Forward(out, inputs, pre)


def _matvec(h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``h @ a`` per replica, ``(R, n, k) × (R, k) → (R, n)``, with the same rounding for every R.

    ``torch.bmm`` of a batch of one matrix–vector product takes another kernel (it rounds
    differently from the same product inside a batch of two or more), so a replica's result would
    depend on how many replicas are still training. A batch of one is computed as a batch of two
    (a copy of itself) instead: a replica's trajectory is then the same whatever batch or chunk it
    is trained in (docs/scale.md, "Splitting")."""
    if h.shape[0] == 1:
        h2 = torch.cat([h, h])
        a2 = torch.cat([a, a])
        return torch.bmm(h2, a2.unsqueeze(-1))[:1].squeeze(-1)
    return torch.bmm(h, a.unsqueeze(-1)).squeeze(-1)


def backward(
    params: Sequence[torch.Tensor],
    fwd: Forward,
    act: activations.Activation,
    alpha: torch.Tensor,
    out_grad: torch.Tensor,
) -> list[torch.Tensor]:
    """Backpropagated signals ``δ_l = out_grad ⊙ ∂f/∂z_l`` for every layer.

    Args:
        out_grad: ``(R, n)``; ones give ``B_l = ∂f/∂z_l``, ``(f − y)/n`` gives the loss signals.

    Returns:
        ``[δ_1, …, δ_L, δ_{L+1}]`` with ``δ_l: (R, n, m)`` and ``δ_{L+1} = out_grad/α: (R, n, 1)``.
    """
    m = fwd.pre[-1].shape[-1] if fwd.pre else 0
    top = (out_grad / alpha[:, None]).unsqueeze(-1)
    deltas = [top]
    g = top * params[-1][:, None, :m]
    for li in range(len(fwd.pre) - 1, -1, -1):
        # g is a fresh tensor (a product), so σ' is applied in place
        if act.deriv_from_output is not None:  # σ(z_l) is the next layer's input
            delta = g.mul_(act.deriv_from_output(fwd.inputs[li + 1][..., :m]))
        else:
            delta = g.mul_(act.deriv(fwd.pre[li]))
        deltas.append(delta)
        if li > 0:
            g = torch.bmm(delta, params[li][:, :, :m])
    return deltas[::-1]


def descend(
    fwd: Forward,
    deltas: Sequence[torch.Tensor],
    current: Sequence[torch.Tensor],
    out: Sequence[torch.Tensor],
    masks: Sequence[torch.Tensor | None] | None = None,
    rates: torch.Tensor | None = None,
) -> None:
    """One gradient step fused with the gradient product: ``out_l = current_l − δ_lᵀ H_{l−1}``.

    ``deltas`` must already carry the step size (``out_grad = η (f − y)/n`` in :func:`backward`),
    so each weight matrix is read and written once (``baddbmm``) instead of three times.
    ``rates: (R, L+1)``: per-layer step factors ``r_l`` (docs/conventions.md §7), the step of
    layer ``l`` being ``η r_l``; ``None``: 1 for every layer.
    """
    masks = masks or [None] * len(out)
    if rates is not None:
        deltas = [d * rates[:, li, None, None].to(d.dtype) for li, d in enumerate(deltas)]
    for li, (d, h) in enumerate(zip(deltas[:-1], fwd.inputs[:-1])):
        if masks[li] is None:
            torch.baddbmm(current[li], d.transpose(1, 2), h, alpha=-1.0, out=out[li])
        else:
            g = torch.bmm(d.transpose(1, 2), h) * masks[li].to(h.device, h.dtype)
            torch.sub(current[li], g, out=out[li])
    g = torch.bmm(deltas[-1].transpose(1, 2), fwd.inputs[-1]).squeeze(1)
    torch.sub(current[-1], g, out=out[-1])
