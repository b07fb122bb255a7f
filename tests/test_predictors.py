"""Kernel predictors (core.linearized.kernel_regression, core.predictors; docs/conventions.md §6):
(b) the converged linearized predictor against direct linear solves and the long-time limit of
the closed-form linearized run, (c) the after kernel equal to (b) when only the output layer is
trained, (d) the infinite-width NTK predictor approached by (b) at the rate m^{-1/2}."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyphase.cells import validate_cell
from lazyphase.core import activations
from lazyphase.core.data import generator, sphere
from lazyphase.core.kernels import normalization, per_layer_ntk
from lazyphase.core.linearized import kernel_regression, pinv_solve, replica_run
from lazyphase.core.model import forward, init_params, layer_masks, resolve_scales
from lazyphase.core.predictors import (
    empirical_ntk,
    layer_weights,
    limit_weights,
    ntk_limit_prediction,
    ntk_prediction,
    split_kernels,
)
from lazyphase.studies.theta_lazy.concentration import limit_kernels


def _setup(m, depth, d, n, n_test, act="relu", centering="none", seeds=(0,), scheme="lecun",
           point_seed=0):  # fmt: skip
    cell = validate_cell(dict(m=m, depth=depth, d=d, activation=act, s=0.5, scheme=scheme,
                              centering=centering, seeds=list(seeds)))  # fmt: skip
    sc = resolve_scales(cell)
    r = len(seeds)
    params = init_params(cell, [sc] * r, list(seeds))
    g = generator(100 + point_seed)
    x = sphere(n + n_test, d, g)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    return dict(
        cell=cell, scales=sc, params=params, x=x, y=y,
        xtr=x[:n].expand(r, -1, -1), ytr=y.expand(r, -1), xte=x[n:].expand(r, -1, -1),
        act=activations.get(act), alpha=torch.full((r,), sc.alpha, dtype=torch.float64),
        masks=layer_masks(cell),
    )  # fmt: skip


def _b(s, **kw):
    return ntk_prediction(
        s["params"], s["xtr"], s["ytr"], s["xte"], s["act"], s["alpha"], False, s["masks"], **kw
    )


def _outputs(s, params, x):
    return forward(params, x, s["act"], s["alpha"], False).out[0].numpy()


def _jacobian(s, x):
    """``∂f/∂θ (n, P)`` of replica 0 (torch.func oracle)."""
    p0 = [p[:1] for p in s["params"]]

    def f(*ps):
        return forward(list(ps), x[:1], s["act"], s["alpha"][:1], False).out[0]

    jac = torch.func.jacrev(f, argnums=tuple(range(len(p0))))(*p0)
    return torch.cat([j.reshape(j.shape[0], -1) for j in jac], dim=1).numpy()


def _rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ------------------------------------------------------------------------------------------
# (b) and (e): the converged linearized predictor
# ------------------------------------------------------------------------------------------


def test_converged_prediction_equals_direct_solves_full_rank():
    """n = 6 < P = 32 parameters: Θ0 is definite; (b) = f0 + Θ0(x, X) solve(Θ0, y − f0) and
    = f0 + J(x) δ* with δ* = lstsq(J, y − f0) (the minimum-norm displacement)."""
    s = _setup(m=8, depth=1, d=3, n=6, n_test=5, act="tanh")
    pred = _b(s)[0]
    theta, cross = (k[0] for k in empirical_ntk(s["params"], s["xtr"], s["xte"], s["act"],
                                                 s["alpha"], False))  # fmt: skip
    f0tr, f0te, y = _outputs(s, s["params"], s["xtr"]), _outputs(s, s["params"], s["xte"]), s["y"]
    direct = f0te + cross @ np.linalg.solve(theta, y.numpy() - f0tr)
    assert _rel(pred, direct) < 1e-10
    j_tr, j_te = _jacobian(s, s["xtr"]), _jacobian(s, s["xte"])
    np.testing.assert_allclose(j_tr @ j_tr.T, theta, rtol=1e-12)  # the oracle's Gram is Θ0
    delta = np.linalg.lstsq(j_tr, y.numpy() - f0tr, rcond=None)[0]
    assert _rel(pred, f0te + j_te @ delta) < 1e-10


def test_converged_prediction_is_the_long_time_limit_of_the_closed_form():
    """replica_run (docs/conventions.md §5) after 10⁹ steps of η = n/λ_max equals (b)."""
    s = _setup(m=8, depth=2, d=3, n=6, n_test=5, act="relu")
    theta, cross = (k[0] for k in empirical_ntk(s["params"], s["xtr"], s["xte"], s["act"],
                                                 s["alpha"], False))  # fmt: skip
    f0tr, f0te = _outputs(s, s["params"], s["xtr"]), _outputs(s, s["params"], s["xte"])
    lam = np.linalg.eigvalsh(theta)
    eta, steps = 6 / lam[-1], 10**9
    assert steps * eta * lam[0] / 6 > 1e3  # every mode has converged to rounding
    e0 = f0tr - s["y"].numpy()
    zeros = np.zeros_like(f0te)
    out, train, _ = replica_run(theta, cross, e0, f0te, zeros, zeros, [(0, steps, eta)],
                                [0, 100, steps])  # fmt: skip
    pred = _b(s)[0]
    assert _rel(out[-1], pred) < 1e-10
    assert _rel(out[1], pred) > 1e-3  # not converged after 100 steps: the check can fail
    assert train[-1] < 1e-25


def test_singular_gram_uses_the_pseudo_inverse():
    """n = 12 > P = 8: Θ0 has rank 8. (b) = f0 + J(x) J⁺ (y − f0), the least-squares fit of the
    linearized model reached by gradient flow from θ0 (not an interpolation)."""
    s = _setup(m=2, depth=1, d=3, n=12, n_test=7, act="tanh")
    pred = _b(s)[0]
    f0tr, f0te = _outputs(s, s["params"], s["xtr"]), _outputs(s, s["params"], s["xte"])
    r = s["y"].numpy() - f0tr
    j_tr, j_te = _jacobian(s, s["xtr"]), _jacobian(s, s["xte"])
    assert np.linalg.matrix_rank(j_tr) == 8
    delta = np.linalg.lstsq(j_tr, r, rcond=None)[0]
    assert _rel(pred, f0te + j_te @ delta) < 1e-10
    theta = j_tr @ j_tr.T
    np.testing.assert_allclose(pinv_solve(theta, r), np.linalg.lstsq(theta, r, rcond=1e-12)[0],
                               rtol=1e-8, atol=1e-10)  # fmt: skip


def test_duplicated_training_point_is_fitted_by_the_mean_of_its_targets():
    """x_0 twice with targets y_0 ≠ y_0': gradient flow ends at (y_0 + y_0')/2 there."""
    s = _setup(m=8, depth=1, d=3, n=6, n_test=2, act="relu")
    x = torch.cat([s["x"][:6], s["x"][:1], s["x"][:1]])  # train: 6 + a copy of x_0; test: x_0
    y = torch.cat([s["y"], torch.tensor([s["y"][0] + 3.0])])
    pred = ntk_prediction(s["params"], x[None, :7], y[None], x[None, 7:], s["act"],
                                s["alpha"], False)[0]  # fmt: skip
    assert pred[0] == pytest.approx(float(s["y"][0]) + 1.5, abs=1e-10)


def test_kernel_regression_is_additive_in_the_start():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((9, 5))
    theta, cross = a[:5] @ a[:5].T, a[5:] @ a[:5].T
    y, f_tr, f_te = rng.standard_normal(5), rng.standard_normal(5), rng.standard_normal(4)
    got = kernel_regression(theta, cross, y, f_tr, f_te)
    ref = f_te + cross @ np.linalg.solve(theta, y) - cross @ np.linalg.solve(theta, f_tr)
    assert _rel(got, ref) < 1e-12


# ------------------------------------------------------------------------------------------
# (c): the after kernel
# ------------------------------------------------------------------------------------------


def _train_output_layer(s, steps):
    """Full-batch GD on the network's loss R = (1/2n) Σ (f − y)², output layer only."""
    params = [p.clone() for p in s["params"]]
    x, y, n = s["xtr"], s["ytr"], s["xtr"].shape[1]
    h = forward(params, x, s["act"], s["alpha"], False).inputs[-1]  # (R, n, m): fixed features
    gram = torch.bmm(h, h.transpose(1, 2)) / s["alpha"][:, None, None] ** 2
    eta = n / torch.linalg.eigvalsh(gram)[:, -1]
    for _ in range(steps):
        f = forward(params, x, s["act"], s["alpha"], False).out
        grad = torch.bmm(((f - y) / n).unsqueeze(1), h).squeeze(1) / s["alpha"][:, None]
        params[-1] = params[-1] - eta[:, None] * grad
    return params


def test_after_kernel_equals_converged_prediction_when_only_the_output_layer_trains():
    s = _setup(m=32, depth=2, d=5, n=6, n_test=5, act="tanh", seeds=(0, 1))
    out = [2]  # the output layer's index l − 1
    early, late = _train_output_layer(s, 20), _train_output_layer(s, 20000)
    args = (s["xtr"], s["ytr"], s["xte"], s["act"], s["alpha"], False, s["masks"])
    pred_b = ntk_prediction(s["params"], *args, layers=out)
    for trained in (early, late):
        pred_c = ntk_prediction(trained, *args, start=s["params"], layers=out)
        assert np.max(np.abs(pred_c - pred_b)) < 1e-12 * np.max(np.abs(pred_b))
    # the network trained to convergence reaches the same predictor (f is linear in a) ...
    f_late = forward(late, s["xte"], s["act"], s["alpha"], False).out.numpy()
    f_early = forward(early, s["xte"], s["act"], s["alpha"], False).out.numpy()
    assert _rel(f_late, pred_b) < 1e-10
    assert _rel(f_early, pred_b) > 1e-3  # ... and after 20 steps not yet
    # the full NTK moves (Θ[1], Θ[2] carry a): the after kernel over all layers differs
    full_b = ntk_prediction(s["params"], *args)
    assert _rel(ntk_prediction(late, *args, start=s["params"]), full_b) > 1e-3
    # started from f(θ_T) instead, the after kernel returns the converged network itself
    own = ntk_prediction(late, *args, layers=out)
    assert _rel(own, f_late) < 1e-10


# ------------------------------------------------------------------------------------------
# (d): the infinite-width NTK predictor
# ------------------------------------------------------------------------------------------


def test_layer_weights_reassemble_the_empirical_ntk():
    """Θ0 = Σ_l w_l G[l] exactly, so (d) with the empirical G[l] in place of K[l] is (b)."""
    s = _setup(m=12, depth=2, d=4, n=6, n_test=4, act="tanh", centering="symmetric",
               seeds=(0, 1, 2))  # fmt: skip
    w = layer_weights([s["scales"]] * 3, 12)
    theta_l = per_layer_ntk(s["params"], s["x"].expand(3, -1, -1), s["act"], s["alpha"], False,
                            s["masks"])  # fmt: skip
    g = (theta_l * normalization([s["scales"]] * 3, 12)[:, :, None, None]).numpy()
    pred_b = _b(s)
    for r in range(3):
        g_tr, g_te = split_kernels(list(g[r]), 6)
        pred_d = ntk_limit_prediction(g_tr, g_te, w[r], s["y"].numpy())
        assert _rel(pred_d, pred_b[r]) < 1e-10


def test_limit_weights_of_named_schemes():
    # lecun at s = 1/2: β = (1, m^{-1/2}): w ∝ (1, m); the first layer drops out like 1/m
    for depth, gammas, limit in [(1, (0, 0.5), (0, 1)), (2, (0, 0.5, 0.5), (0, 0.5, 0.5))]:
        np.testing.assert_allclose(limit_weights(gammas), limit, atol=1e-15)
        for m in (100, 10000):
            cell = validate_cell(dict(m=m, depth=depth, d=5, s=0.5, scheme="lecun", seeds=[0]))
            w = layer_weights([resolve_scales(cell)], m)[0]
            assert np.abs(w / w.sum() - limit).max() == pytest.approx(1 / (depth * m + 1), rel=1e-9)
    # uniform:0.5 with κ through α (output_multiplier): every β_l = m^{-1/2}, equal weights
    cell = validate_cell(dict(m=64, depth=2, d=5, s=0.3, scheme="uniform:0.5", seeds=[0],
                              kappa_via="output_multiplier"))  # fmt: skip
    w = layer_weights([resolve_scales(cell)], 64)[0]
    np.testing.assert_allclose(w / w.sum(), limit_weights((0.5, 0.5, 0.5)), rtol=1e-12)
    # ... with κ through the output std (default) at s = 1/2: β_3 = m^{s−1/2} = 1, γ = (½, ½, 0)
    # and the output layer drops out
    cell = validate_cell(dict(m=64, depth=2, d=5, s=0.5, scheme="uniform:0.5", seeds=[0]))
    w = layer_weights([resolve_scales(cell)], 64)[0]
    np.testing.assert_allclose(w / w.sum(), np.array([64, 64, 1]) / 129, rtol=1e-12)
    np.testing.assert_allclose(limit_weights((0.5, 0.5, 0.0)), (0.5, 0.5, 0.0), atol=1e-15)
    # explicit c: kaiming hidden layers have c² = 2
    np.testing.assert_allclose(limit_weights((0.5, 0.5), c=(np.sqrt(2), 1.0)), (1 / 3, 2 / 3))
    with pytest.raises(ValueError, match="one value per layer"):
        limit_weights((0.5, 0.5), c=(1.0,))


#: Widths and draws of the rate check (n = n_test = 8, d = 5, symmetric centering). Over ten point
#: sets (``point_seed`` 1…10) the fitted slope was −0.490 ± 0.025 (relu L=1 uniform:0.5, weights
#: ∝ (m, 1)), −0.500 ± 0.017 (tanh L=1 lecun, ∝ (1, m)) and −0.486 ± 0.043 (relu L=2 lecun,
#: ∝ (1, m, m)); all 30 within −0.41…−0.55. The tolerance 0.1 is ≥ 2.3 standard deviations;
#: the fixed point set 1 gives −0.531, −0.482, −0.434.
RATE_M = {1: [64, 128, 256, 512, 1024, 2048, 4096], 2: [64, 128, 256, 512, 1024]}
RATE_DRAWS = 32
RATE_TOL = 0.1


def _rate_errors(act, depth, scheme, n=8, d=5, point_seed=1):
    errs = []
    for m in RATE_M[depth]:
        s = _setup(m=m, depth=depth, d=d, n=n, n_test=n, act=act, centering="symmetric",
                   seeds=range(RATE_DRAWS), scheme=scheme, point_seed=point_seed)  # fmt: skip
        k_tr, k_te = split_kernels(limit_kernels(s["x"], act, depth, scheme, d, m), n)
        pred_d = ntk_limit_prediction(k_tr, k_te, layer_weights([s["scales"]], m)[0],
                                      s["y"].numpy())  # fmt: skip
        pred_b = _b(s)
        errs.append(np.linalg.norm(pred_b - pred_d, axis=1) / np.linalg.norm(pred_d))
    return np.asarray(errs)  # (n_m, draws)


@pytest.mark.parametrize(("act", "depth", "scheme"),
                         [("relu", 1, "uniform:0.5"), ("tanh", 1, "lecun"), ("relu", 2, "lecun")])  # fmt: skip
def test_finite_width_predictor_approaches_the_ntk_limit_like_inverse_sqrt_width(act, depth, scheme):  # fmt: skip
    errs = _rate_errors(act, depth, scheme)
    log_m = np.repeat(np.log(RATE_M[depth]), RATE_DRAWS)
    slope = np.polyfit(log_m, np.log(errs).ravel(), 1)[0]
    assert abs(slope + 0.5) < RATE_TOL, slope
    assert np.median(errs[-1]) < 0.5 * np.median(errs[0])


def test_linearized_network_has_a_singular_limit_kernel():
    """tanh with uniform:0.5: β_1 = m^{-1/2}, every pre-activation → 0, the limit kernels are
    those of a linear network (rank ≤ d = 5 < n = 8): Θ∞ is singular and (d) warns."""
    s = _setup(m=64, depth=1, d=5, n=8, n_test=4, act="tanh", scheme="uniform:0.5")
    k_tr, k_te = split_kernels(limit_kernels(s["x"], "tanh", 1, "uniform:0.5", 5, 64), 8)
    assert np.linalg.matrix_rank(k_tr.sum(0), tol=1e-10 * np.abs(k_tr).max()) == 5
    with pytest.warns(RuntimeWarning, match="singular"):
        ntk_limit_prediction(k_tr, k_te, np.ones(2), s["y"].numpy())
