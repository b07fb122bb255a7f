"""The linearized (kernel) run of every replica, in closed form (docs/conventions.md §5).

The linearized model ``f_lin(θ) = f(θ0) + ∇f(θ0)·(θ − θ0)`` trained by the same gradient descent
as the network (same step sizes ``η_τ``, halvings included, rejected steps left out) is kernel
gradient descent with ``Θ0 = Θ(θ0)``. With ``Θ0 = U diag(λ) Uᵀ`` on the training set and the
residual ``e = f − f0c − y`` (``f0c`` the frozen initial output of ``subtract_initial``, else 0):

    e(t)          = U diag(P(t)) Uᵀ e0,          P_k(t) = Π_{τ<t} (1 − η_τ λ_k / n)
    R_lin(t)      = (1/2n) Σ_k P_k(t)² (u_k·e0)²
    f_lin(x, t)   = f(θ0)(x) − Θ0(x, X) U diag((1 − P_k(t)) / λ_k) Uᵀ e0

since ``Σ_τ (η_τ/n) Π_{σ<τ}(1 − η_σ λ/n) = (1 − Π_τ(1 − η_τ λ/n)) / λ`` (telescoping; ``t/n``
for ``λ = 0``). The step sizes are piecewise constant (a halving changes them, a rejected step
is a step of size 0), so each product is a sum of ``count · log|1 − η λ/n|`` over a few segments:
no second training loop. ``Θ0(x, X)`` is :func:`~lazyphase.core.kernels.cross_ntk`, the layer
identity of :func:`~lazyphase.core.kernels.per_layer_ntk` (same ``α``, masks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lazyphase.core.kernels import cross_ntk, layer_sum, per_layer_ntk
from lazyphase.core.training.results import Linearized, Problem, TrainResult

#: Why a batch has no linearized run (the arrays are then NaN, ``linearized.attrs['skipped']``).
SKIP_SGD = "population SGD (batch_size): the training set changes at every step"
SKIP_LARGE_N = "n > {max_n}: the full Θ0 on the training set is not formed (O(R n³))"


def step_segments(
    lr0: float, events: Sequence[tuple[int, float]], final_step: int
) -> list[tuple[int, int, float]]:
    """The step size of every accepted transition ``k → k+1``, ``0 ≤ k < final_step``, as
    constant segments ``(start, stop, η)`` (transitions ``start … stop−1``).

    ``events``: the replica's safeguard events ``(step, lr_new)``. An event at step ``e`` means
    the step ``e−1 → e`` was undone (the state at ``e`` is that at ``e−1``: a step of size 0)
    and every later step uses ``lr_new`` (see :class:`~lazyphase.core.training.stopping.Safeguard`).
    """
    segs: list[tuple[int, int, float]] = []
    cur, eta = 0, float(lr0)
    for step, lr_new in sorted(events):
        segs.append((cur, step - 1, eta))
        segs.append((step - 1, step, 0.0))
        cur, eta = step, float(lr_new)
    segs.append((cur, final_step, eta))
    out = []
    for a, b, e in segs:
        a, b = max(a, 0), min(b, final_step)
        if b > a:
            out.append((a, b, e))
    return out


def _factors(
    lam: np.ndarray, segs: Sequence[tuple[int, int, float]], upto: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """``P_k = Π (1 − η λ_k/n)`` and ``(1 − P_k)/λ_k`` over the transitions before ``upto``."""
    logabs = np.zeros_like(lam)
    odd = np.zeros(lam.shape, dtype=bool)
    zero = np.zeros(lam.shape, dtype=bool)
    t_acc = 0.0
    for a, b, eta in segs:
        c = min(b, upto) - a
        if c <= 0 or eta == 0.0:
            continue
        t_acc += c * eta
        x = eta * lam / n
        with np.errstate(divide="ignore", invalid="ignore"):
            la = np.where(x < 1.0, np.log1p(-np.minimum(x, 1.0)), np.log(np.abs(x - 1.0)))
        logabs = logabs + c * la
        odd ^= (x > 1.0) & (c % 2 == 1)
        zero |= x == 1.0
    logabs = np.where(zero, -np.inf, logabs)
    with np.errstate(over="ignore", invalid="ignore"):
        mag = np.exp(logabs)
        p = np.where(odd, -mag, mag)
        one_minus = np.where(odd, 1.0 + mag, -np.expm1(logabs))
        g = np.where(lam != 0.0, one_minus / np.where(lam != 0.0, lam, 1.0), t_acc / n)
    return p, g


def replica_run(
    theta: np.ndarray,
    cross: np.ndarray,
    e0: np.ndarray,
    f0_test: np.ndarray,
    f0c_test: np.ndarray,
    y_test: np.ndarray,
    segs: Sequence[tuple[int, int, float]],
    steps: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One replica: ``Θ0 (n, n)``, ``Θ0(x_test, X) (n_test, n)``, ``e0 (n,)``, the raw initial
    test output, its centring part and the test targets ``(n_test,)``, the step segments of
    :func:`step_segments` and the snapshot steps ``(S,)``. Returns ``f_lin`` on the test set
    ``(S, n_test)`` and the linearized training and test losses ``(S,)``."""
    n = theta.shape[0]
    lam, u = np.linalg.eigh(theta)
    z0 = u.T @ e0
    kx = cross @ u
    outs, train, test = [], [], []
    for k in steps:
        p, g = _factors(lam, segs, int(k), n)
        # past η_crit (lr_c > 1 of the critical policy) the linear run grows without bound
        with np.errstate(over="ignore", invalid="ignore"):
            f = f0_test - kx @ (g * z0)
            train.append(0.5 * np.sum((p * z0) ** 2) / n)
            test.append(0.5 * np.mean((f - f0c_test - y_test) ** 2))
        outs.append(f)
    return np.stack(outs), np.asarray(train), np.asarray(test)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).numpy()


def linearize(
    problem: Problem, result: TrainResult, lr0: Sequence[float], *, max_n: int
) -> Linearized:
    """The linearized run of every replica of a finished batch.

    ``problem``: the trainer's :class:`~lazyphase.core.train.Problem` (as given to ``train``);
    ``result``: its :class:`~lazyphase.core.train.TrainResult` (snapshot steps, final steps,
    safeguard events, final parameters); ``lr0 (R,)`` the initial step sizes. Batches with
    population SGD, or with ``n > max_n``, get NaN arrays and a ``skipped`` reason. Also the
    converged predictor ``f_lin(∞)`` (:func:`kernel_regression` with ``Θ0`` from ``f(θ0)``).
    """
    p = problem
    n_rep, n, n_test = p.x_train.shape[0], p.x_train.shape[1], p.x_test.shape[1]
    steps = np.asarray(result.steps)
    f0_test = _np(p.outputs(p.params0, p.x_test))
    final = [q.to(p.x_test.device, p.x_test.dtype) for q in result.params_final]
    f_final = _np(p.outputs(final, p.x_test))
    nan = np.full((n_rep, len(steps)), np.nan)
    skipped = ""
    if p.sampler is not None:
        skipped = SKIP_SGD
    elif n > max_n:
        skipped = SKIP_LARGE_N.format(max_n=max_n)
    if skipped:
        return Linearized(
            np.full((n_rep, len(steps), n_test), np.nan), nan, nan.copy(), f0_test, f_final,
            skipped, np.full((n_rep, n_test), np.nan),
        )  # fmt: skip
    # the per-layer steps η r_l make the dynamics' kernel Σ_l r_l Θ[l] (docs/conventions.md §7)
    w = p.layer_lr
    theta = _np(layer_sum(per_layer_ntk(p.params0, p.x_train, p.act, p.alpha, p.bias, p.masks), w))
    cross = _np(
        layer_sum(cross_ntk(p.params0, p.x_test, p.x_train, p.act, p.alpha, p.bias, p.masks), w)
    )
    f0_train = p.outputs(p.params0, p.x_train)
    e0 = _np(f0_train - p.f0_train - p.y_train)
    f0c_test, y_test = _np(p.f0_test), _np(p.y_test)
    events: dict[int, list[tuple[int, float]]] = {}
    for ev in result.events:
        events.setdefault(int(ev.replica), []).append((int(ev.step), float(ev.lr_new)))
    outs, train, test, conv = [], [], [], []
    for r in range(n_rep):
        segs = step_segments(float(lr0[r]), events.get(r, []), int(result.final_step[r]))
        o, tr, te = replica_run(
            theta[r], cross[r], e0[r], f0_test[r], f0c_test[r], y_test[r], segs, steps
        )
        outs.append(o)
        train.append(tr)
        test.append(te)
        # f_lin(∞): the residual e0 = f0 − f0c − y has the targets y + f0c of the raw output
        conv.append(f0_test[r] - cross[r] @ pinv_solve(theta[r], e0[r]))
    return Linearized(
        np.stack(outs), np.stack(train), np.stack(test), f0_test, f_final, "", np.stack(conv)
    )


#: Eigenvalues of a Gram at or below this fraction of its largest are treated as its null space
#: by :func:`kernel_regression`. The limit of the gradient flow inverts every positive eigenvalue,
#: but one below ``1e-12 λ_max`` is within a few hundred rounding units of the Gram's entries
#: (not determined by them) and would take ``~10¹²`` steps of size ``n/λ_max`` to converge.
PINV_RTOL = 1e-12


def pinv_solve(theta: np.ndarray, r: np.ndarray, rtol: float = PINV_RTOL) -> np.ndarray:
    """``Θ⁺ r`` for a symmetric ``Θ (n, n)`` and ``r (n,)``, by ``eigh``:
    eigenvalues with ``|λ| ≤ rtol · max|λ|`` are dropped (the minimum-norm least-squares
    solution, ``numpy.linalg.lstsq(Θ, r, rcond=rtol)`` for a PSD ``Θ``)."""
    lam, u = np.linalg.eigh(np.asarray(theta, dtype=np.float64))
    cut = rtol * np.max(np.abs(lam), initial=0.0)
    keep = np.abs(lam) > cut
    inv = np.where(keep, 1.0 / np.where(keep, lam, 1.0), 0.0)
    return u @ (inv * (u.T @ np.asarray(r, dtype=np.float64)))


def kernel_regression(
    theta: np.ndarray,
    cross: np.ndarray,
    y: np.ndarray,
    f_train: np.ndarray,
    f_test: np.ndarray,
    *,
    rtol: float = PINV_RTOL,
) -> np.ndarray:
    """Kernel regression with the Gram ``Θ`` started from the function ``f``: the ``t → ∞``
    limit of kernel gradient flow ``df/dt = −(1/n) Θ(·, X)(f(X) − y)`` (docs/conventions.md §6):

        f_∞(x) = f(x) + Θ(x, X) Θ⁺ (y − f(X))

    ``theta: (n, n)`` the Gram on the training set, ``cross: (n_test, n)`` the kernel between
    the test and training points, ``y, f_train: (n,)`` the targets and the starting function on
    the training set, ``f_test: (n_test,)`` the starting function on the test set. Returns
    ``(n_test,)``. ``Θ⁺`` is the pseudo-inverse of :func:`pinv_solve` (cut ``rtol``).

    With ``Θ = Θ0`` and ``f = f(θ0)`` this is the end point of :func:`replica_run` (the
    converged linearized predictor ``f_lin(∞)``): for ``λ_k > 0`` and ``0 < η_τ λ_k/n < 2``,
    ``P_k → 0`` and ``(1 − P_k)/λ_k → 1/λ_k``; for ``λ_k = 0`` the factor ``t/n`` multiplies
    ``Θ0(x, X) u_k = J(x) Jᵀ u_k = 0`` (``‖Jᵀu_k‖² = u_kᵀ Θ0 u_k = 0``). Hence the pseudo-inverse
    — on the training set ``f_∞(X) = f(X) + Π (y − f(X))``, ``Π`` the projection on the range
    of ``Θ0``: the least-squares fit of the linearized model, reached with the minimum-norm
    displacement ``θ − θ0 = J⁺ (y − f(X))``. ``replica_run``'s residual ``e0 = f0 − f0c − y``
    corresponds to the targets ``y + f0c``.
    """
    r = np.asarray(y, dtype=np.float64) - np.asarray(f_train, dtype=np.float64)
    return np.asarray(f_test, dtype=np.float64) + np.asarray(cross) @ pinv_solve(theta, r, rtol)
