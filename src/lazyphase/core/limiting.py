"""Limiting (m → ∞) per-layer kernels of the normalized network (docs/conventions.md §2 and §4).

The normalized network with ``L`` hidden layers is

    f̄(x) = (1/m) āᵀ σ(m^{-1/2} W̄[L] σ(… σ(m^{-1/2} W̄[2] σ(W̄[1] x)))),   W̄, ā ~ N(0, 1).

Its normalized per-layer Gram ``G[l] = (m β_l²/κ²) Θ[l] = m ⟨∇_{W̄[l]} f̄(x), ∇_{W̄[l]} f̄(x')⟩``
converges to ``K[l]`` given by the standard NNGP/NTK recursions

    Σ[0] = X Xᵀ,   Σ[l] = E σ(u)σ(v),   Σ̇[l] = E σ'(u)σ'(v),   (u, v) ~ N(0, Λ[l−1]),
    K[l] = Σ[l−1] ⊙ Π_{k=l}^{L} Σ̇[k]   (l ≤ L),        K[L+1] = Σ[L].

Derivation (checked by hand and by the Monte Carlo tests in ``tests/test_limiting.py``): for
``l ≥ 2`` the layer input is ``m^{-1/2} h_{l−1}``, so the input factor of ``G[l]`` is
``(1/m) h_{l−1}·h'_{l−1} → Σ[l−1]``; the backpropagated signal ``∂f̄/∂z_l`` carries ``1/m`` from the
output and one ``m^{-1/2}`` per higher layer, so ``m · ⟨B_l, B'_l⟩ → Π_{k≥l} Σ̇[k]`` (every
``Σ_k ā_k² σ'σ'`` or ``Σ_j σ'_j σ'_j …`` sum of ``m`` terms is absorbed by one factor ``1/m``).
The definitions of docs/conventions.md agree with this exact limit at every depth.

Variances. A scheme may scale the pre-activations: ``z_1 = s_1 W̄[1] x`` and
``z_l = s_l m^{-1/2} W̄[l] h_{l−1}`` with ``v_l = s_l²`` (``v_1 = β_1²``, ``v_l = m β_l²``; lecun: all 1,
kaiming: all 2). With ``input_variance = (v_1 … v_L)`` the recursion runs on the actual
covariances ``Λ_l = v_l Σ[l−1]`` and, with the nominal κ of docs/conventions.md §2,

    G[l] → Σ[l−1] ⊙ Π_{k≥l} Σ̇[k] / Π_{k<l} v_k,        G[L+1] → Σ[L] / Π_{k≤L} v_k.

For positively homogeneous σ the ``v`` cancel exactly (``f = κ f̄``); they are then ignored.

Bias. ``model.py`` appends a constant 1 to every layer input and scales its weight like the
others (``β_l``). In the limit only the network input keeps it: ``Σ[0] = XXᵀ + 1`` (so
``K[1]`` uses ``XXᵀ + 1``), while for ``l ≥ 2`` the appended 1 contributes ``v_l/m → 0`` to
``Λ_l`` and ``1/m → 0`` to ``G[l]``. ``bias=True`` is this exact limit of the project's model.
``bias="every_layer"`` gives the other common convention (an unscaled unit-variance bias at
every layer, Jacot et al.: every ``Σ[l]`` gets ``+1`` before it is fed on, and ``K[l]`` uses
``Σ[l−1] + 1``); it is *not* the limit of ``model.py``.

Regimes (one per hidden layer, see :func:`limit_regime` and :func:`scheme_setup`) describe
schemes whose pre-activation variance does not stay O(1) as ``m → ∞``:

* ``"normal"``: variance O(1); the recursion above.
* ``"linearized"`` (variance → 0): σ is replaced by its tangent ``σ(0) + σ'(0)u``, so
  ``Σ = σ(0)² + σ'(0)² Λ``, ``Σ̇ = σ'(0)²``. For ``σ(0) = 0`` (tanh, erf, GELU) this is the exact
  limit of ``G`` and the variance factors cancel. For ``σ(0) ≠ 0`` (sigmoid, softplus) ``G`` has
  *no* O(1) limit: the constant mode ``σ(0)²/v`` diverges (and an O(v) constant
  ``σ(0)σ''(0)v`` is neglected); the returned kernel is the kernel of the tangent activation at
  the given variance factor, whose non-constant part is the leading order.
* ``"step"`` (variance → ∞, σ bounded with ``σ(−∞) = a ≠ b = σ(+∞)``): σ(z) → a·1{z<0} + b·1{z>0}
  and ``Σ = a² + a(b−a) + (b−a)²(π−θ)/(2π)``, ``θ = arccos ρ`` (arc-cosine kernel of degree 0).
  ``Σ̇`` has no O(1) limit: ``E σ'(z)σ'(z') = O(1/v)`` off the diagonal and ``O(v^{-1/2})`` on it.
  We return its normalized limit ``√v Σ̇ → δ_{xx'} ‖σ'‖₂² / √(2π Σ[l−1](x,x))`` (a diagonal
  "memorization" kernel). Consequently the returned ``K[l]`` equal
  ``lim G[l] · Π_{step k ≥ l} √v_k · Π_{step k < l} v_k`` (the variance factor of a step layer is
  not used) and kernels of different layers are on different, m-dependent scales: compare
  ``λ_min`` across layers only with that in mind.
* ``"none"``: no O(1) limit (e.g. softplus or GELU with exploding variance — note that under the
  nominal κ their ``G`` tends to the ReLU kernels since ``σ(Pz)/P → relu(z)``, but this is not
  implemented); :func:`limiting` raises ``ValueError``.

Numerics. ReLU (arc-cosine kernels of degrees 0 and 1, Cho & Saul 2009), erf (Williams 1997) and
linear use closed forms. Every other activation uses 2-D Gauss–Hermite quadrature on the 2×2
covariance ``[[a, c], [c, b]]`` with the Cholesky factor ``u = √a ξ₁``,
``v = √b (ρ ξ₁ + √(1−ρ²) ξ₂)`` (well defined at ``ρ = ±1``, no NaN for ``x = x'``). When every
diagonal entry of ``Λ`` is the same (inputs on the sphere, with or without bias — the project's
case) ``Σ`` and ``Σ̇`` depend on the pair only through ``ρ``; the quadrature is then evaluated on
Chebyshev nodes in ``ρ ∈ [−1, 1]`` and the Chebyshev series (truncated where its coefficients
fall below 1e-15 of the largest) is evaluated at all ``n²`` correlations. Otherwise every pair is
integrated directly (chunked, ``O(n² q²)`` with ``q`` set by the largest variance: slow —
about 140 s for 200 off-sphere points with |x|² ≈ 10, tanh, L = 2, on 2 CPU cores; on the
sphere n = 1000, L = 4 takes about 1.5 s).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from lazyphase.core import activations
from lazyphase.core.model import hidden_stds
from lazyphase.core.schemes import uniform_gamma

Regime = Literal["normal", "linearized", "step", "none"]
REGIMES: tuple[str, ...] = ("normal", "linearized", "step", "none")

#: Quadrature orders tried when ``order=None``: the first whose result agrees with 1.5× the
#: order to ``ORDER_TOL`` (relative to the largest value) is used with 1.5× the order.
ORDER_START = 48
ORDER_MAX = 1536
ORDER_TOL = 1e-12
#: Chebyshev nodes for the constant-diagonal path (doubled while the series has not converged).
CHEB_START = 128
CHEB_MAX = 2048
#: Convergence test of the Chebyshev series: the last quarter of its coefficients below this
#: fraction of the largest (the coefficients' rounding noise is about 1e-15).
CHEB_TOL = 1e-13
#: Relative spread of the diagonal below which the constant-diagonal path is used.
DIAG_RTOL = 1e-10
#: Number of quadrature nodes × pairs per chunk in the direct path.
CHUNK = 1 << 23

_DTYPE = torch.float64


# --------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------


def _corr(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``c/√(ab)`` clipped to ``[−1, 1]``; 0 where ``ab = 0``."""
    ab = a * b
    rho = torch.where(ab > 0, c / torch.sqrt(ab.clamp_min(1e-300)), torch.zeros_like(c))
    return rho.clamp(-1.0, 1.0)


def _relu_closed(a, b, c):
    rho = _corr(a, b, c)
    theta = torch.acos(rho)
    sig = torch.sqrt(a * b) / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * rho)
    dot = (math.pi - theta) / (2 * math.pi)
    return sig, dot


def _erf_closed(a, b, c):
    p = (1 + 2 * a) * (1 + 2 * b)
    sig = (2 / math.pi) * torch.asin((2 * c / torch.sqrt(p)).clamp(-1.0, 1.0))
    dot = (4 / math.pi) / torch.sqrt((p - 4 * c * c).clamp_min(1.0))  # p − 4c² ≥ 1 + 2a + 2b
    return sig, dot


def _linear_closed(a, b, c):
    return c.clone(), torch.ones_like(c)


_CLOSED = {"relu": _relu_closed, "erf": _erf_closed, "linear": _linear_closed}


def _has_closed_form(act: activations.Activation) -> bool:
    """Closed forms are used only for the built-in functions (not for a re-registered name)."""
    if act.name not in _CLOSED:
        return False
    builtin = {"relu": torch.relu, "erf": torch.erf}
    return act.name == "linear" or act.fn is builtin[act.name]


# --------------------------------------------------------------------------------------------
# Gauss–Hermite quadrature
# --------------------------------------------------------------------------------------------


def _gauss_hermite(q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights of ``E f(ξ) ≈ Σ w_i f(ξ_i)``, ``ξ ~ N(0, 1)`` (probabilists' rule).

    Nodes whose weight is below ``1e-22`` of the largest are dropped (they lie beyond
    ``|ξ| ≈ 10``; for σ of at most polynomial growth their contribution is far below rounding),
    which keeps e.g. 204 of 1024 nodes.
    """
    from scipy.special import roots_hermitenorm  # stable for large q (numpy's is not above ~350)

    x, w = roots_hermitenorm(q)
    w = w / math.sqrt(2 * math.pi)
    keep = w > 1e-22 * w.max()
    return torch.as_tensor(x[keep], dtype=_DTYPE), torch.as_tensor(w[keep], dtype=_DTYPE)


def _quad_pairs(
    act: activations.Activation, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, q: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E σ(u)σ(v), E σ'(u)σ'(v))`` for 1-D tensors of pair covariances, chunked.

    Cholesky factorization per pair: ``u = √a ξ₁``, ``v = √b (ρ ξ₁ + √(1−ρ²) ξ₂)``.
    """
    xi, w = _gauss_hermite(q)
    rho = _corr(a, b, c)
    s = torch.sqrt((1 - rho * rho).clamp_min(0.0))
    sa, sb = torch.sqrt(a.clamp_min(0.0)), torch.sqrt(b.clamp_min(0.0))
    out_s = torch.empty_like(c)
    out_d = torch.empty_like(c)
    k = xi.numel()
    step = max(1, CHUNK // (k * k))
    for lo in range(0, c.numel(), step):
        sl = slice(lo, lo + step)
        u = sa[sl, None] * xi  # (p, k)
        v = sb[sl, None, None] * (rho[sl, None, None] * xi[:, None] + s[sl, None, None] * xi)
        out_s[sl] = ((act.fn(u) * w) * (act.fn(v) @ w)).sum(-1)
        out_d[sl] = ((act.deriv(u) * w) * (act.deriv(v) @ w)).sum(-1)
    return out_s, out_d


def _choose_order(act: activations.Activation, a: float, order: int | None) -> int:
    """The quadrature order: ``order`` if given, else the adaptive choice for variance ``a``.

    Adaptive: on 17 correlations in ``[−1, 1]`` (equal variances ``a``) compare orders ``q`` and
    ``⌈1.5q⌉`` for ``q = 48, 96, …`` (up to ``ORDER_MAX``); use ``⌈1.5q⌉`` for the first ``q`` whose results agree
    to ``ORDER_TOL`` relative to the largest value. Warns when ``ORDER_MAX`` is not enough
    (activations with a kink: Gauss–Hermite then converges only algebraically).
    """
    if order is not None:
        if order < 2:
            raise ValueError(f"quadrature order must be ≥ 2, got {order}")
        return int(order)
    rho = torch.cos(torch.linspace(0, math.pi, 17, dtype=_DTYPE))
    aa = torch.full_like(rho, a)
    q = ORDER_START
    err = math.inf
    while True:
        q2 = math.ceil(1.5 * q)
        s1, d1 = _quad_pairs(act, aa, aa, rho * a, q)
        s2, d2 = _quad_pairs(act, aa, aa, rho * a, q2)
        scale = max(s2.abs().max().item(), d2.abs().max().item(), 1e-300)
        err = max((s1 - s2).abs().max().item(), (d1 - d2).abs().max().item()) / scale
        if err <= ORDER_TOL or q2 >= ORDER_MAX:
            break
        q *= 2
    if err > ORDER_TOL:
        warnings.warn(
            f"Gauss–Hermite quadrature for {act.name!r} at variance {a:.3g}: estimated relative "
            f"error {err:.1e} at order {q2} (kink or very large variance)",
            RuntimeWarning,
            stacklevel=3,
        )
    return q2


def _cheb_values_to_coeffs(vals: torch.Tensor) -> torch.Tensor:
    """Chebyshev coefficients from values at the first-kind nodes ``cos(π(k+½)/N)`` (last axis)."""
    n = vals.shape[-1]
    k = torch.arange(n, dtype=_DTYPE)
    cosmat = torch.cos(math.pi * torch.outer(k, k + 0.5) / n)  # (j, k)
    coeffs = (2.0 / n) * vals @ cosmat.T
    coeffs[..., 0] /= 2
    return coeffs


def _clenshaw(coeffs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Evaluate ``Σ_j c_j T_j(x)`` for ``coeffs (F, J)`` at 1-D ``x (P,)``: ``(F, P)``.

    In place (three passes over ``(F, P)`` per coefficient, no allocation in the loop).
    """
    f, j = coeffs.shape
    x2 = (2 * x).expand(f, -1)
    b1 = torch.zeros((f, x.numel()), dtype=_DTYPE)
    b2 = torch.zeros_like(b1)
    for idx in range(j - 1, 0, -1):
        # b2 ← 2x b1 − b2 + c_idx, then swap roles
        b2.neg_().addcmul_(x2, b1).add_(coeffs[:, idx : idx + 1])
        b1, b2 = b2, b1
    return b2.neg_().addcmul_(x.expand(f, -1), b1).add_(coeffs[:, :1])


def _quad_constant_diag(
    act: activations.Activation, a: float, rho: torch.Tensor, q: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Quadrature on Chebyshev nodes in ρ (equal variances ``a``), series evaluated at ``rho``."""
    n_nodes = CHEB_START
    while True:
        k = torch.arange(n_nodes, dtype=_DTYPE)
        nodes = torch.cos(math.pi * (k + 0.5) / n_nodes)
        aa = torch.full_like(nodes, a)
        s, d = _quad_pairs(act, aa, aa, nodes * a, q)
        coeffs = _cheb_values_to_coeffs(torch.stack([s, d]))
        mag = coeffs.abs()
        top = mag.max(dim=1, keepdim=True).values.clamp_min(1e-300)
        tail = (mag[:, -(n_nodes // 4) :] / top).max().item()
        if tail <= CHEB_TOL or n_nodes >= CHEB_MAX:
            break
        n_nodes *= 2
    if tail > CHEB_TOL:
        warnings.warn(
            f"Chebyshev series in ρ for {act.name!r} not converged (tail {tail:.1e})",
            RuntimeWarning,
            stacklevel=3,
        )
    # keep the coefficients up to the last one above the rounding level of the largest
    keep = (mag / top > 1e-15).any(dim=0).nonzero()
    j = int(keep.max().item()) + 1 if keep.numel() else 1
    n = rho.shape[0]
    iu = torch.triu_indices(n, n)
    vals = _clenshaw(coeffs[:, :j], rho[iu[0], iu[1]])  # upper triangle only
    out = torch.empty((2, n, n), dtype=_DTYPE)
    out[:, iu[0], iu[1]] = vals
    out[:, iu[1], iu[0]] = vals
    return out[0], out[1]


def gaussian_pair_expectations(
    activation: str,
    lam: torch.Tensor,
    *,
    order: int | None = None,
    method: Literal["auto", "direct", "chebyshev"] = "auto",
    closed_form: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E σ(u)σ(v), E σ'(u)σ'(v))`` for ``(u, v) ~ N(0, [[Λxx, Λxy], [Λxy, Λyy]])``, all pairs.

    Args:
        activation: registry name.
        lam: ``(n, n)`` symmetric PSD covariance ``Λ``.
        order: Gauss–Hermite order per dimension (``q²`` nodes per pair); ``None``: adaptive
            (see :func:`_choose_order`; tanh: 144, 288, 1152 for variances 0.3, 1, 3; erf,
            sigmoid, softplus, GELU: 72–288).
        method: ``"chebyshev"`` (requires a constant diagonal), ``"direct"`` (every pair) or
            ``"auto"`` (chebyshev when the diagonal is constant to ``DIAG_RTOL``).
        closed_form: use the closed forms of relu, erf and linear (``False``: quadrature, for tests).

    Returns:
        Two ``(n, n)`` float64 tensors, exactly symmetric.
    """
    act = activations.get(activation)
    lam = torch.as_tensor(lam, dtype=_DTYPE)
    lam = 0.5 * (lam + lam.T)
    diag = torch.diagonal(lam).clamp_min(0.0)
    if closed_form and _has_closed_form(act):
        return _CLOSED[act.name](diag[:, None], diag[None, :], lam)
    dmax = float(diag.max())
    dmin = float(diag.min())
    constant = dmax - dmin <= DIAG_RTOL * max(dmax, 1e-300)
    if method == "chebyshev" and not constant:
        raise ValueError("method='chebyshev' needs a constant diagonal of the covariance")
    if method not in ("auto", "direct", "chebyshev"):
        raise ValueError(f"unknown method {method!r}; allowed: auto, direct, chebyshev")
    q = _choose_order(act, dmax, order)
    if constant and method != "direct":
        a = float(diag.mean())
        rho = (lam / a).clamp(-1.0, 1.0) if a > 0 else torch.zeros_like(lam)
        s, d = _quad_constant_diag(act, a, rho, q)
    else:
        n = lam.shape[0]
        iu = torch.triu_indices(n, n)
        s_u, d_u = _quad_pairs(act, diag[iu[0]], diag[iu[1]], lam[iu[0], iu[1]], q)
        s = torch.empty_like(lam)
        d = torch.empty_like(lam)
        s[iu[0], iu[1]] = s_u
        d[iu[0], iu[1]] = d_u
        s[iu[1], iu[0]] = s_u
        d[iu[1], iu[0]] = d_u
    return 0.5 * (s + s.T), 0.5 * (d + d.T)


# --------------------------------------------------------------------------------------------
# regimes
# --------------------------------------------------------------------------------------------


def _sigma0(act: activations.Activation) -> float:
    return float(act.fn(torch.zeros(1, dtype=_DTYPE))[0])


def _deriv_sq_integral(act: activations.Activation) -> float:
    """``∫ σ'(t)² dt`` over the real line (finite for the bounded activations of the step regime)."""
    from scipy.integrate import quad

    def f(t: float) -> float:
        return float(act.deriv(torch.tensor([t], dtype=_DTYPE))[0]) ** 2

    val, _ = quad(f, -np.inf, np.inf, limit=200, epsabs=1e-14, epsrel=1e-12)
    return float(val)


def limit_regime(activation: str, variance_exponent: float, *, tol: float = 1e-9) -> str:
    """The O(1) limit of a layer whose pre-activation variance scales like ``m^e``.

    Args:
        activation: registry name.
        variance_exponent: ``e`` with ``Var z_l ∝ m^e`` (actual pre-activations of the layer).
        tol: ``|e| ≤ tol`` counts as 0.

    Returns:
        ``"normal"`` if ``e = 0`` or σ is positively homogeneous (the scale cancels exactly);
        ``"linearized"`` if ``e < 0`` (tangent ``σ(0) + σ'(0)u``; an exact O(1) limit of the
        normalized Gram only when ``σ(0) = 0``, see the module docstring);
        ``"step"`` if ``e > 0`` and σ is bounded with ``σ(−∞) ≠ σ(+∞)``;
        ``"none"`` otherwise (``e > 0``, σ unbounded and not homogeneous, or bounded with equal
        limits): no O(1) limit.
    """
    act = activations.get(activation)
    if act.homogeneous or abs(variance_exponent) <= tol:
        return "normal"
    if variance_exponent < 0:
        return "linearized"
    lo, hi = act.limits
    if lo is not None and hi is not None and lo != hi:
        return "step"
    return "none"


def scheme_variance_exponents(scheme: str | dict, depth: int) -> list[float]:
    """Exponents of the per-layer variance factors ``v_1 = β_1²``, ``v_l = m β_l²`` (l ≥ 2).

    lecun, kaiming: all 0; xavier: ``(−1, 0, …)`` (``β_1² = 2/(d+m)``); ``uniform:γ``:
    ``(−2γ, 1−2γ, …)``; a mapping ``{"c": [...], "gamma": [...]}``: ``(−2γ_1, 1−2γ_2, …)``.
    """
    if isinstance(scheme, dict):
        g = [float(x) for x in scheme["gamma"][:depth]]
    elif scheme in ("lecun", "kaiming"):
        g = [0.0] + [0.5] * (depth - 1)
    elif scheme == "xavier":
        g = [0.5] * depth
    elif uniform_gamma(scheme) is not None:
        g = [uniform_gamma(scheme)] * depth
    else:
        raise ValueError(f"unknown scheme {scheme!r}; allowed: lecun, kaiming, xavier, uniform:γ")
    return [-2 * g[0]] + [1 - 2 * x for x in g[1:]]


def scheme_setup(
    scheme: str | dict, activation: str, depth: int, m: int, d: int
) -> tuple[list[float], list[str]]:
    """Variance factors and regimes of a named scheme, for :func:`limiting`.

    Walks the layers with the exponent ``e_l`` of the actual pre-activation variance:
    ``e_l = e(v_l) + q_{l−1}`` where ``q_{l−1}`` is the exponent of the layer input's mean square
    (``q_0 = 0`` on the sphere; after a normal layer: ``e_l`` if σ is homogeneous, else 0; after
    a linearized layer: ``e_l`` if ``σ(0) = 0``, else 0; after a step layer: 0).

    Returns:
        ``(v, regimes)``: ``v_1 = β_1²`` and ``v_l = m β_l²`` evaluated at this ``m`` (used by
        the recursion; they cancel in the limit wherever an exact limit exists), and the
        regime of each hidden layer. Raises ``ValueError`` when a layer has no O(1) limit.
    """
    act = activations.get(activation)
    exps = scheme_variance_exponents(scheme, depth)
    betas = hidden_stds(scheme, m, d, depth)
    v = [betas[0] ** 2] + [m * b * b for b in betas[1:]]
    sig0 = _sigma0(act)
    regimes: list[str] = []
    q_prev = 0.0
    for layer, e_v in enumerate(exps, start=1):
        e = e_v + q_prev
        reg = limit_regime(activation, e)
        if reg == "none":
            raise ValueError(
                f"scheme {scheme!r}, activation {activation!r}: layer {layer} has pre-activation "
                f"variance ∝ m^{e:g} and no O(1) limit (regime 'none')"
            )
        regimes.append(reg)
        if reg == "normal":
            q_prev = e if act.homogeneous else 0.0
        elif reg == "linearized":
            q_prev = e if abs(sig0) < 1e-14 else 0.0
        else:
            q_prev = 0.0
    return v, regimes


def _layer(
    act: activations.Activation,
    inp: torch.Tensor,
    v: float,
    regime: str,
    order: int | None,
    method: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ[l], Σ̇[l])`` of one hidden layer from its input kernel ``Σ[l−1]`` (``inp``)."""
    if regime == "normal":
        return gaussian_pair_expectations(act.name, v * inp, order=order, method=method)
    if act.homogeneous and act.name != "linear":
        raise ValueError(
            f"activation {act.name!r} is positively homogeneous: its kernels are exact at every "
            f"scale, use regime 'normal' (got {regime!r})"
        )
    if regime == "linearized":
        s0, d0 = _sigma0(act), act.slope0
        return s0 * s0 + d0 * d0 * v * inp, torch.full_like(inp, d0 * d0)
    if regime == "step":
        lo, hi = act.limits
        if lo is None or hi is None or lo == hi:
            raise ValueError(
                f"activation {act.name!r} with regime 'step': needs finite σ(−∞) ≠ σ(+∞), "
                f"got limits {act.limits}"
            )
        diag = torch.diagonal(inp)
        rho = _corr(diag[:, None], diag[None, :], inp)
        theta = torch.acos(rho)
        sig = lo * lo + lo * (hi - lo) + (hi - lo) ** 2 * (math.pi - theta) / (2 * math.pi)
        c = _deriv_sq_integral(act) / torch.sqrt(2 * math.pi * diag.clamp_min(1e-300))
        same = rho >= 1 - 1e-12
        dot = torch.where(same, torch.sqrt(c[:, None] * c[None, :]), torch.zeros_like(inp))
        return sig, dot
    if regime == "none":
        raise ValueError(
            f"activation {act.name!r} with regime 'none': the normalized Gram has no O(1) limit"
        )
    raise ValueError(f"unknown regime {regime!r}; allowed: {', '.join(REGIMES)}")


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def limiting(
    X: torch.Tensor | np.ndarray,
    activation: str,
    depth: int,
    *,
    order: int | None = None,
    bias: bool | Literal["every_layer"] = False,
    input_variance: float | Sequence[float] = 1.0,
    regime: str | Sequence[str] = "normal",
    method: Literal["auto", "direct", "chebyshev"] = "auto",
) -> list[torch.Tensor]:
    """Limiting per-layer kernels ``[K[1], …, K[L+1]]`` of the normalized network.

    Args:
        X: ``(n, d)`` inputs (the project's are on the unit sphere).
        activation: registry name (closed forms: relu, erf, linear; quadrature otherwise).
        depth: number ``L ≥ 1`` of hidden layers.
        order: Gauss–Hermite order per dimension; ``None``: adaptive (relative error ≲ 1e-12
            for smooth σ; see :func:`gaussian_pair_expectations`).
        bias: ``False``; ``True``: the exact limit of the project's model with bias (``+1`` on the
            input only, see the module docstring); ``"every_layer"``: ``+1`` before every layer.
        input_variance: ``v_l`` (one float for all layers, or one per hidden layer): the
            actual pre-activation covariance of layer ``l`` is ``v_l Σ[l−1]``; the result is the
            limit of ``G[l]`` with the nominal κ (``/ Π_{k<l} v_k``). See :func:`scheme_setup`.
        regime: one regime for all hidden layers or one per layer (``"normal"``, ``"linearized"``,
            ``"step"``; ``"none"`` raises ``ValueError``).
        method: quadrature evaluation, see :func:`gaussian_pair_expectations`.

    Returns:
        ``depth + 1`` float64 ``(n, n)`` tensors; index ``l−1`` is ``K[l]``, index ``L`` is
        ``K[L+1] = Σ[L]`` (normalized as described in the module docstring).
    """
    if depth < 1:
        raise ValueError(f"depth must be ≥ 1, got {depth}")
    act = activations.get(activation)
    x = torch.as_tensor(X, dtype=_DTYPE)
    if x.dim() != 2:
        raise ValueError(f"X must be (n, d), got shape {tuple(x.shape)}")
    regimes, var = _layer_settings(act, depth, regime, input_variance, bias)
    gram = x @ x.T
    inputs = [0.5 * (gram + gram.T) + (1.0 if bias else 0.0)]  # inputs[l-1] feeds layer l
    dots = []
    for layer in range(depth):
        sig, dot = _layer(act, inputs[-1], var[layer], regimes[layer], order, method)
        dots.append(dot)
        inputs.append(sig + 1.0 if bias == "every_layer" else sig)
    if bias == "every_layer":
        inputs[-1] = inputs[-1] - 1.0  # the output layer has no +1 in K[L+1] = Σ[L]
    return _layer_kernels(inputs, dots, var, regimes)


def _layer_settings(
    act: activations.Activation,
    depth: int,
    regime: str | Sequence[str],
    input_variance: float | Sequence[float],
    bias: bool | str,
) -> tuple[list[str], list[float]]:
    """:func:`limiting`'s per-hidden-layer regimes and variances ``v_l``, checked (each error
    names the bad value)."""
    regimes = [regime] * depth if isinstance(regime, str) else list(regime)
    if np.ndim(input_variance) == 0:
        var = [float(input_variance)] * depth  # type: ignore[arg-type]
    else:
        var = [float(v) for v in np.asarray(input_variance, dtype=float).ravel()]
    if len(regimes) != depth or len(var) != depth:
        raise ValueError(f"need one regime and one variance per hidden layer ({depth})")
    for r in regimes:
        if r not in REGIMES:
            raise ValueError(f"unknown regime {r!r}; allowed: {', '.join(REGIMES)}")
    if act.homogeneous:
        var = [1.0] * depth  # exact cancellation; avoids under/overflow for extreme v
    for v, r in zip(var, regimes):
        if r != "step" and not (math.isfinite(v) and v > 0):
            raise ValueError(f"input_variance must be positive and finite, got {v}")
    if bias not in (False, True, "every_layer"):
        raise ValueError(f"bias must be False, True or 'every_layer', got {bias!r}")
    return regimes, var


def _layer_kernels(
    inputs: Sequence[torch.Tensor],
    dots: Sequence[torch.Tensor],
    var: Sequence[float],
    regimes: Sequence[str],
) -> list[torch.Tensor]:
    """``[K[1], …, K[L+1]]`` from the layer inputs ``Σ[l−1]`` (``inputs``, ``L+1`` of them) and
    the derivative kernels ``Σ̇[l]`` (``dots``), each divided by ``Π_{k<l} v_k``."""
    depth = len(dots)
    scale = [1.0]  # Π_{k<l} v_k over the non-step layers
    for v, r in zip(var, regimes):
        scale.append(scale[-1] * (1.0 if r == "step" else v))
    out = []
    for layer in range(depth):
        k = inputs[layer].clone()
        for dot in dots[layer:]:
            k = k * dot
        out.append(k / scale[layer])
    out.append(inputs[depth] / scale[depth])
    return out


def lambda_s(K_list: Sequence[torch.Tensor | np.ndarray]) -> float:
    """``λ_S = min_l λ_min(K[l])`` (``eigvalsh`` of each symmetric kernel)."""
    return min(float(torch.linalg.eigvalsh(torch.as_tensor(k, dtype=_DTYPE))[0]) for k in K_list)
