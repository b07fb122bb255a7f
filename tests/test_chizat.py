"""Chizat et al. 2019 / the Note (experiments C1–C8): the model family, the step rules, the
best-so-far test loss, population SGD, and the science on small instances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lazyphase.cells import ConfigError, validate_cell
from lazyphase.core import activations
from lazyphase.core.model import forward, init_params, resolve_scales
from lazyphase.core.train import initial_lr, train_replicas


def chizat(**kw):
    base = dict(m=6, d=5, n=20, n_test=30, model="chizat", n_gram_snapshots=0, seeds=[0])
    return validate_cell({**base, **kw})


# --------------------------------------------------------------------------- the model family
@pytest.mark.parametrize(
    ("tau", "mult", "power"), [(0.3, 1.0, 0.0), (2.0, 5.0, 0.5), (1.0, 1.0, 1)]
)
def test_forward_is_chizats_model(tau, mult, power):
    """f = A Σ_j a_j relu(b_j·x) with a, b ~ τ N(0,1), A = chizat_alpha m^-power (to 1e-12)."""
    cell = chizat(tau=tau, chizat_alpha=mult, chizat_alpha_power=power)
    sc = resolve_scales(cell)
    w, a = init_params(cell, [sc], [0])
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 7, 5, generator=g, dtype=torch.float64)
    out = forward(
        [w, a], x, activations.get("relu"), torch.tensor([sc.alpha], dtype=torch.float64), False
    ).out[0]
    A = mult * 6.0**-power
    wn, an, xn = w[0].numpy(), a[0].numpy(), x[0].numpy()
    expect = A * np.maximum(xn @ wn.T, 0) @ an
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-12, atol=1e-15)
    # both layers have std tau: the normalized draw is shared, so w / tau is tau-independent
    w1, _ = init_params(chizat(tau=1.0), [resolve_scales(chizat(tau=1.0))], [0])
    np.testing.assert_allclose(w[0].numpy(), tau * w1[0].numpy(), rtol=1e-14)
    assert sc.kappa == pytest.approx(6 * tau**2 * A, rel=1e-14)


def test_circle_init_is_on_the_sphere_symmetrized():
    cell = chizat(m=8, d=2, init="circle", tau=0.2, centering="symmetric")
    w, a = init_params(cell, [resolve_scales(cell)], [3])
    np.testing.assert_allclose(w[0].norm(dim=1).numpy(), 0.2, rtol=1e-14)
    half = a[0, :4].numpy()
    assert np.all((half >= 0) & (half <= 0.2))
    np.testing.assert_array_equal(a[0, 4:].numpy(), -half)


@pytest.mark.parametrize(
    ("kw", "key"),
    [(dict(depth=2), "'depth'"), (dict(bias=True), "'bias'"), (dict(activation="tanh"), "'activation'"),
     (dict(objective_scale=2.0), "'objective_scale'")],
)  # fmt: skip
def test_chizat_model_rejects_what_it_is_not(kw, key):
    with pytest.raises(ConfigError, match=key):
        chizat(**kw)


def test_chizat_only_keys_need_the_chizat_model():
    with pytest.raises(ConfigError, match=r"'lr_policy'.*model 'chizat'"):
        validate_cell(dict(m=4, lr_policy="chizat_alpha"))
    with pytest.raises(ConfigError, match="'init'"):
        validate_cell(dict(m=4, init="circle"))


# --------------------------------------------------------------------------- step rules
@pytest.mark.parametrize(
    ("kw", "eta"),
    [
        (dict(lr_policy="chizat", lr_c=0.1, tau=0.05), 10.0),  # min(10, 0.1/τ²) capped
        (dict(lr_policy="chizat", lr_c=0.1, tau=2.0), 0.025),
        (dict(lr_policy="chizat_alpha", lr_c=0.1, tau=0.5, chizat_alpha=4.0), 0.025 / 16),
        (dict(lr_policy="chizat_alpha", lr_c=0.1, tau=0.5, chizat_alpha=4.0, step_on="R"), 0.025),
        (dict(lr_policy="width", lr_c=0.05, chizat_alpha_power=1.0), 0.05 / 6 * 36),  # α = 1/m
        (dict(lr_policy="width", lr_c=1.0, chizat_alpha_power=0.5), 1.0),  # α = 1/√m
        (dict(lr_policy="fixed", lr=0.005), 0.005),
        (
            dict(
                lr_policy="chizat",
                lr_c=0.25,
                lr_max=25,
                tau=1.0,
                chizat_alpha_power=1.0,
                step_on="mean_field",
            ),
            0.25 * 6,
        ),  # η/A = η m
    ],
)
def test_step_rules(kw, eta):
    """The step on R: the rule's η on F_A = R/A² divided by A² (step_on: F_alpha), or η."""
    cell = chizat(**kw)
    assert initial_lr(cell, resolve_scales(cell), math.nan) == pytest.approx(eta, rel=1e-12)


@pytest.mark.parametrize("step_on", ["F_alpha", "R"])
def test_one_step_is_gradient_descent_on_F_alpha(step_on):
    """One trainer step equals w − η ∇_w F(w), F = R(A h)/A² (or R), by autograd (to 1e-12)."""
    cell = chizat(
        tau=0.7, chizat_alpha=3.0, lr_policy="chizat", lr_c=0.1, max_steps=1, step_on=step_on
    )
    run = train_replicas([cell])
    data = run.replicas[0].data
    w0 = [p[0].clone().requires_grad_(True) for p in run.params0]
    h = torch.relu(data.x_train @ w0[0].T) @ w0[1]
    risk = 0.5 * ((3.0 * h - data.y_train) ** 2).mean()
    F = risk / 9.0 if step_on == "F_alpha" else risk
    grads = torch.autograd.grad(F, w0)
    eta = min(10.0, 0.1 / 0.49)
    for p0, g, p1 in zip(w0, grads, run.result.params_final):
        np.testing.assert_allclose(
            p1[0].numpy(), (p0 - eta * g).detach().numpy(), rtol=1e-12, atol=1e-14
        )


# --------------------------------------------------------------------------- recording
def test_best_test_loss_is_the_minimum_over_evaluations():
    cell = chizat(tau=0.5, lr_policy="chizat", lr_c=0.1, max_steps=60, test_every=1,
                  n_snapshots=400, seeds=[0, 1])  # fmt: skip
    res = train_replicas([cell]).result
    assert len(res.steps) == 61  # every step is a snapshot: the trajectory holds every evaluation
    np.testing.assert_array_equal(res.best_test_loss, res.test_loss.min(axis=1))
    np.testing.assert_array_equal(res.best_test_step, res.steps[res.test_loss.argmin(axis=1)])


def test_population_sgd_draws_fresh_seeded_batches():
    cell = chizat(tau=0.5, lr_policy="chizat", lr_c=0.1, max_steps=30, batch_size=8,
                  tail_steps=10, seeds=[0, 1])  # fmt: skip
    a, b = train_replicas([cell]).result, train_replicas([cell]).result
    np.testing.assert_array_equal(a.tail_train_loss, b.tail_train_loss)
    assert np.isfinite(a.tail_train_loss).all()
    # replica 0 alone sees the same stream as in the batch of two
    alone = train_replicas([{**cell, "seeds": [0]}]).result
    np.testing.assert_allclose(alone.tail_train_loss[0], a.tail_train_loss[0], rtol=1e-12)


def test_weight_snapshots_end_at_the_final_weights():
    cell = chizat(tau=0.5, lr_policy="chizat", lr_c=0.1, max_steps=40, weight_snapshots=True,
                  n_snapshots=5)  # fmt: skip
    res = train_replicas([cell]).result
    assert res.weights is not None and res.weights[0].shape == (1, len(res.steps), 6, 5)
    for w, p in zip(res.weights, res.params_final):
        np.testing.assert_array_equal(w[:, -1], p.numpy())


# --------------------------------------------------------------------------- science, small
SMALL = dict(model="chizat", m=20, d=10, n=100, n_test=200, seeds=[0, 1], resample_data=True,
             n_gram_snapshots=0, tol_rel=1e-12, n_snapshots=5)  # fmt: skip


def test_lazy_plateau_with_symmetrized_init():
    """C1: the test loss at the largest τ (lazy) exceeds the best small-τ test loss, by > 3×
    (observed ≈ 50× at this size)."""
    taus = (0.01, 0.03, 0.1, 10.0)
    cells = [
        validate_cell({**SMALL, "tau": t, "lr_policy": "chizat", "lr_c": 0.1,
                       "centering": "symmetric", "max_steps": 600, "test_every": 5})
        for t in taus
    ]  # fmt: skip
    res = train_replicas(cells).result
    best = res.best_test_loss.reshape(len(taus), 2).mean(axis=1)
    end = res.test_loss[:, -1].reshape(len(taus), 2).mean(axis=1)
    assert end[-1] > 3 * best[:-1].min(), (best, end)


def test_sqrt_m_scaling_moves_parameters_less_than_mean_field():
    """C2: at the same m, A = 1/√m (η = 1/m) moves θ less than A = 1/m (η = 0.05/m), per replica."""
    cells = [
        validate_cell({**SMALL, "m": 16, "tau": 1.0, "lr_policy": "width", "lr_c": lc,
                       "chizat_alpha_power": p, "teacher_scale": 100.0, "max_steps": 300})
        for p, lc in ((0.5, 1.0), (1.0, 0.05))
    ]  # fmt: skip
    rd = train_replicas(cells).result.rd[:, -1]  # (4 replicas, 2 layers)
    assert np.all(rd[:2] < rd[2:]), rd


def test_alpha_tau_level_lines_have_q_near_2():
    """C6: the level lines of the (τ, A) test-loss map follow A τ^q = const with |q − 2| < 0.5
    (observed q ≈ 1.8 on this 4 × 4 grid)."""
    from lazyphase.studies.chizat.analysis import fit_level_lines

    taus, mults = [0.03, 0.1, 0.3, 1.0], [1.0, 3.0, 10.0, 30.0]
    cells = [
        validate_cell({**SMALL, "m": 10, "d": 5, "n": 50, "n_test": 100, "tau": t,
                       "chizat_alpha": a, "lr_policy": "chizat_alpha", "lr_c": 0.1,
                       "step_on": "R", "max_steps": 400, "patience": 50})
        for t in taus for a in mults
    ]  # fmt: skip
    res = train_replicas(cells).result
    grid = np.log10(res.test_loss[:, -1].reshape(4, 4, 2).mean(axis=-1))
    fit = fit_level_lines(np.log10(taus), np.log10(mults), grid)
    assert abs(fit.q - 2) < 0.5, fit
    assert len(fit.points) >= 8


def test_level_line_fit_recovers_a_known_exponent():
    """A map that depends on log A + 1.5 log τ only gives q = 1.5 (to 1e-6)."""
    from lazyphase.studies.chizat.analysis import fit_level_lines

    lt, la = np.linspace(-2, 1, 9), np.linspace(0, 3, 8)
    grid = la[None, :] + 1.5 * lt[:, None]  # linear: the interpolated crossings are exact
    fit = fit_level_lines(lt, la, grid)
    assert fit.q == pytest.approx(1.5, abs=1e-6)


def test_landscape_grid_is_symmetric_around_the_mean_solution():
    """C8: coordinates symmetric around 0, the centre point is the mean solution, the
    directions orthonormal, and a loss even around the mean gives a point-symmetric grid."""
    from lazyphase.studies.chizat.analysis import landscape

    rng = np.random.default_rng(0)
    sol = rng.normal(size=(8, 30)) * np.linspace(3, 0.1, 30)
    centre = sol.mean(axis=0)
    curv = rng.uniform(0.5, 2, size=30)

    def even(theta):
        return ((theta - centre) ** 2 * curv).sum(axis=1)

    land = landscape(sol, even, n_grid=25, span=3.0)
    np.testing.assert_allclose(land.u, -land.u[::-1], atol=1e-12)
    np.testing.assert_allclose(land.v, -land.v[::-1], atol=1e-12)
    assert land.u[12] == 0 and land.v[12] == 0 and land.loss[12, 12] == pytest.approx(0, abs=1e-12)
    np.testing.assert_allclose(land.loss, land.loss[::-1, ::-1], rtol=1e-12)
    np.testing.assert_allclose(land.directions @ land.directions.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(land.u[-1], 3 * land.sigma[0], rtol=1e-12)
    np.testing.assert_allclose(land.coords.mean(axis=0), 0, atol=1e-12)
    assert land.sigma[0] >= land.sigma[1] > 0


def test_chizat_test_loss_matches_the_model():
    """The landscape's batched loss equals the trainer's test loss at the final weights."""
    from lazyphase.studies.chizat.analysis import chizat_test_loss

    cell = chizat(tau=0.5, lr_policy="chizat", lr_c=0.1, max_steps=20, chizat_alpha=2.0)
    run = train_replicas([cell])
    w, a = (p.numpy() for p in run.result.params_final)
    data = run.replicas[0].data
    fn = chizat_test_loss(data.x_test.numpy(), data.y_test.numpy(), 6, 2.0)
    got = fn(np.concatenate([w.reshape(1, -1), a], axis=1))
    assert got[0] == pytest.approx(run.result.test_loss[0, -1], rel=1e-12)
