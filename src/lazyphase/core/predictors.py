"""Kernel predictors of the network's test outputs (docs/conventions.md §6).

Three kernel regressions, all :func:`~lazyphase.core.linearized.kernel_regression`
``f_∞(x) = f(x) + Θ(x, X) Θ⁺ (y − f(X))``, differing in the kernel and the starting function:

* :func:`ntk_prediction` at ``θ0`` — the converged linearized predictor ``f_lin(∞)``: the
  empirical NTK ``Θ0 = Θ(θ0)`` started from ``f(θ0)``;
* :func:`ntk_prediction` at ``θ_T`` with ``start = θ0`` — the *after kernel*: the empirical NTK
  ``Θ_T = Θ(θ_T)`` of the final weights, started from the same ``f(θ0)``, so that it differs
  from ``f_lin(∞)`` only through the change of the kernel (equal to it when it cannot move);
* :func:`ntk_limit_prediction` — the infinite-width NTK predictor: ``Θ∞ = Σ_l w_l K[l]`` with
  the limiting kernels ``K[l]`` of :mod:`lazyphase.core.limiting` and the scheme's layer weights
  :func:`layer_weights` (or their ``m → ∞`` direction :func:`limit_weights`), started from 0.

``layers`` selects the trained layers (indices ``l − 1``): the kernel that drives training is
the sum of the trained layers' Grams only (``Θ = Σ_{l trained} Θ[l]``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from lazyphase.core import activations
from lazyphase.core.kernels import cross_ntk, normalization, per_layer_ntk
from lazyphase.core.linearized import PINV_RTOL, kernel_regression
from lazyphase.core.model import Scales, forward


def empirical_ntk(
    params: Sequence[torch.Tensor],
    x_train: torch.Tensor,
    x_test: torch.Tensor,
    act: activations.Activation,
    alpha: torch.Tensor,
    bias: bool,
    masks: Sequence[torch.Tensor | None] | None = None,
    layers: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The empirical NTK at ``params`` summed over ``layers`` (``None``: all), float64 numpy.

    Args:
        params: ``[W1, …, WL, a]`` with leading replica axis R.
        x_train: ``(R, n, d)``; x_test: ``(R, n_test, d)``.
        act, alpha, bias, masks: as in :func:`lazyphase.core.kernels.per_layer_ntk`.
        layers: indices ``l − 1`` of the layers whose Grams are summed.

    Returns:
        ``Θ(X, X): (R, n, n)`` and ``Θ(x_test, X): (R, n_test, n)``.
    """
    idx = list(range(len(params))) if layers is None else list(layers)
    theta = per_layer_ntk(params, x_train, act, alpha, bias, masks)[:, idx].sum(1)
    cross = cross_ntk(params, x_test, x_train, act, alpha, bias, masks)[:, idx].sum(1)
    return theta.detach().cpu().numpy(), cross.detach().cpu().numpy()


def ntk_prediction(
    params: Sequence[torch.Tensor],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    act: activations.Activation,
    alpha: torch.Tensor,
    bias: bool,
    masks: Sequence[torch.Tensor | None] | None = None,
    *,
    start: Sequence[torch.Tensor] | None = None,
    layers: Sequence[int] | None = None,
    rtol: float = PINV_RTOL,
) -> np.ndarray:
    """Kernel regression with the empirical NTK at ``params``, started from ``f(start)``
    (``None``: ``f(params)``), on the test set: ``(R, n_test)``. Two uses:

    (b) ``ntk_prediction(params0, …)``: the converged linearized predictor

        f_lin(∞)(x) = f(θ0)(x) + Θ0(x, X) Θ0⁺ (y − f(θ0)(X)),

    the ``t → ∞`` limit of :func:`lazyphase.core.linearized.replica_run` (pseudo-inverse, see
    :func:`~lazyphase.core.linearized.kernel_regression`).

    (c) ``ntk_prediction(params_final, …, start=params0)``: the after-kernel predictor

        f_after(x) = f(θ0)(x) + Θ_T(x, X) Θ_T⁺ (y − f(θ0)(X)),      Θ_T = Θ(θ_T).

    It starts from ``f(θ0)``, not ``f(θ_T)``: then ``f_after − f_lin(∞)`` is caused by the
    change of the kernel alone, and ``f_after = f_lin(∞)`` exactly whenever ``Θ_T = Θ0`` (e.g.
    only the output layer trained, ``layers = [L]``: ``Θ[L+1] = H_L H_Lᵀ/α²`` depends on the
    hidden features only), at every ``T``. Started from ``f(θ_T)`` it would return the
    network's own ``f(θ_T)`` for any converged run (its training residual is ≈ 0).

    ``y_train: (R, n)`` are the targets of the raw output: with ``centering = subtract_initial``
    pass ``y + f0c(X)``. The other arguments are those of :func:`empirical_ntk`.
    """
    theta, cross = empirical_ntk(params, x_train, x_test, act, alpha, bias, masks, layers)
    start = params if start is None else start
    f_tr = forward(start, x_train, act, alpha, bias).out.detach().cpu().numpy()
    f_te = forward(start, x_test, act, alpha, bias).out.detach().cpu().numpy()
    y = y_train.detach().cpu().numpy()
    out = [
        kernel_regression(theta[r], cross[r], y[r], f_tr[r], f_te[r], rtol=rtol)
        for r in range(theta.shape[0])
    ]
    return np.stack(out)


def layer_weights(scales: Sequence[Scales], m: int) -> np.ndarray:
    """The weights ``w_l = κ²/(m β_l²)`` of ``Θ[l] = w_l G[l]`` (docs/conventions.md §4), so that
    ``Θ0 ≈ Σ_l w_l K[l]`` at large ``m``. Shape ``(R, L+1)``: the reciprocal of
    :func:`lazyphase.core.kernels.normalization`."""
    return 1.0 / normalization(scales, m).numpy()


def limit_weights(
    gammas: Sequence[float], c: Sequence[float] | None = None, *, tol: float = 1e-9
) -> np.ndarray:
    """The ``m → ∞`` direction of the layer weights for ``β_l = c_l m^{−γ_l}``, ``(L+1,)``.

    ``w_l = κ² c_l^{−2} m^{2γ_l − 1}``: the layers with the largest ``γ_l`` (within ``tol``)
    dominate, the others vanish relative to them like ``m^{−2Δγ}``. Returns ``c_l^{−2}`` on the
    dominant layers and 0 elsewhere, normalized to sum 1 (kernel regression from 0 does not see
    a common factor, so only this direction has a limit). ``c``: default all 1. With
    ``kappa_via = output_std`` (``c = α = 1``) ``γ_{L+1} = (L+1)/2 − s − Σ_{l≤L} γ_l``; e.g.
    lecun: ``γ = (0, ½, …, ½, 1 − s)``.
    """
    g = np.asarray(gammas, dtype=np.float64)
    cc = np.ones_like(g) if c is None else np.asarray(c, dtype=np.float64)
    if g.shape != cc.shape or g.ndim != 1:
        raise ValueError(f"gammas {g.shape} and c {cc.shape} must be one value per layer")
    w = np.where(g >= g.max() - tol, cc**-2.0, 0.0)
    return w / w.sum()


def ntk_limit_prediction(
    k_train: np.ndarray,
    k_cross: np.ndarray,
    weights: np.ndarray,
    y_train: np.ndarray,
    *,
    rtol: float = PINV_RTOL,
) -> np.ndarray:
    """(d) The infinite-width NTK predictor ``Θ∞(x, X) Θ∞⁺ y`` with ``Θ∞ = Σ_l w_l K[l]``,
    started from ``f = 0`` (the symmetric-centering limit, docs/conventions.md §6).

    Args:
        k_train: ``(L+1, n, n)`` the limiting kernels ``K[l](X, X)``.
        k_cross: ``(L+1, n_test, n)`` ``K[l](x_test, X)`` (see :func:`split_kernels`).
        weights: ``(L+1,)`` layer weights (:func:`layer_weights` of one replica or
            :func:`limit_weights`); only their direction matters.
        y_train: ``(n,)``.

    Returns:
        ``(n_test,)``. Warns (``RuntimeWarning``) when ``Θ∞`` is singular on ``X``
        (``λ_min ≤ rtol · λ_max``): the finite-width predictors then need not converge to its
        pseudo-inverse predictor (they depend on the vanishing part of ``Θ0`` on the null space;
        e.g. a linearized network, whose ``K[l]`` have rank ≤ d, with ``n > d``).
    """
    w = np.asarray(weights, dtype=np.float64)
    theta = np.tensordot(w, np.asarray(k_train, dtype=np.float64), axes=1)
    cross = np.tensordot(w, np.asarray(k_cross, dtype=np.float64), axes=1)
    lam = np.linalg.eigvalsh(theta)
    if lam[0] <= rtol * lam[-1]:
        warnings.warn(
            f"Θ∞ = Σ w_l K[l] is singular on the training set (λ_min/λ_max = "
            f"{lam[0] / lam[-1]:.1e}): the infinite-width limit of the predictor need not be "
            "its pseudo-inverse predictor",
            RuntimeWarning,
            stacklevel=2,
        )
    zero_tr, zero_te = np.zeros(theta.shape[0]), np.zeros(cross.shape[0])
    return kernel_regression(theta, cross, y_train, zero_tr, zero_te, rtol=rtol)


def split_kernels(
    kernels: Sequence[torch.Tensor | np.ndarray], n_train: int
) -> tuple[np.ndarray, np.ndarray]:
    """``[K[1], …, K[L+1]]`` on the joint set ``[X; x_test]`` (each ``(n + n_test)²``) →
    ``K(X, X): (L+1, n, n)`` and ``K(x_test, X): (L+1, n_test, n)``."""
    k = np.stack([np.asarray(kk, dtype=np.float64) for kk in kernels])
    return k[:, :n_train, :n_train], k[:, n_train:, :n_train]
