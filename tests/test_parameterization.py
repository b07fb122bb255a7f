"""abc-parameterizations (docs/conventions.md §7): the trainer against a literal abc network
trained by autograd, the equivalence classes SP ≡ NTP and μP ≡ MFP, and a wrong shift detected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyphase.cells import ConfigError, validate_cell
from lazyphase.core import activations
from lazyphase.core import parameterization as abc
from lazyphase.core.model import forward, resolve_scales, standard_normal_init
from lazyphase.core.train import train_replicas

M, DEPTH, LR, STEPS = 8, 2, 0.05, 12
RELU = activations.get("relu")


def _cell(param, **kw):
    return validate_cell(
        dict(m=M, depth=DEPTH, d=4, n=6, n_test=5, parameterization=param, lr_policy="fixed",
             lr=LR, safeguard="none", max_steps=STEPS, tol_rel=1e-30, n_snapshots=6,
             weight_snapshots=True, n_gram_snapshots=0, **kw)
    )  # fmt: skip


def literal_trajectory(p: abc.ABC, cell, data, steps):
    """The oracle: ``W_l = A_l m^{-a_l} w_l``, ``w_l = B_l m^{-b_l} θ̄_l`` (the trainer's
    normal draw), plain GD on ``w`` with ``η C_l m^{-c_l}`` by autograd; ``f`` on the test set
    ``(len(steps), n_test)``."""
    m = cell["m"]
    draw = standard_normal_init(cell, cell["seeds"][0])
    w = [(B * m**-b * z).clone().requires_grad_(True) for z, b, B in zip(draw, p.b, p.init)]
    mult = [A * m**-a for a, A in zip(p.a, p.mult)]
    lrs = [LR * C * m**-c for c, C in zip(p.c, p.lr)]

    def f(x):
        h = x
        for wl, ml in zip(w[:-1], mult[:-1]):
            h = torch.relu(h @ (ml * wl).T)
        return h @ (mult[-1] * w[-1])

    out = []
    for k in range(max(steps) + 1):
        if k in steps:
            out.append(f(data.x_test).detach().clone())
        loss = 0.5 * ((f(data.x_train) - data.y_train) ** 2).mean()
        grads = torch.autograd.grad(loss, w)
        with torch.no_grad():
            for wl, g, lr in zip(w, grads, lrs):
                wl -= lr * g
    return torch.stack(out).numpy()


def trainer_trajectory(cell):
    """The project's trainer: ``f`` on the test set at its snapshots and the snapshot steps."""
    run = train_replicas([cell])
    res, rep = run.result, run.replicas[0]
    alpha = torch.tensor([rep.scales.alpha], dtype=torch.float64)
    fs = []
    for k in range(len(res.steps)):
        ps = [torch.as_tensor(w[:, k]) for w in res.weights]
        fs.append(forward(ps, rep.data.x_test[None], RELU, alpha, False).out[0])
    return np.stack([f.numpy() for f in fs]), [int(s) for s in res.steps], rep.data


@pytest.mark.parametrize("name", abc.PRESETS)
def test_trainer_follows_the_literal_abc_network(name):
    f_tr, steps, data = trainer_trajectory(_cell(name))
    f_lit = literal_trajectory(abc.preset(name, DEPTH), _cell(name), data, steps)
    scale = np.abs(f_lit).max()
    assert steps[-1] == STEPS and np.abs(f_tr - f_lit).max() <= 1e-10 * max(scale, 1.0)
    assert np.abs(f_lit[-1] - f_lit[0]).max() > 1e-3 * scale  # it did move


@pytest.mark.parametrize(
    ("first", "second", "theta"),
    [("mup", "mfp", (0.0, 0.5, 0.5)), ("sp", "ntp", (0.0, 0.5, 0.5))],
)
def test_equivalence_classes_give_one_trajectory(first, second, theta):
    """μP shifted by θ = (0, ½, ½) is MFP (c shifted by −2θ); SP shifted is NTP with c = (0, −1,
    −1). Both literal networks give the same f(x, t) to 1e-10; the unshifted c does not."""
    cell = _cell(first)
    data = train_replicas([cell]).replicas[0].data
    steps = [0, 3, 7, STEPS]
    base = abc.preset(first, DEPTH)
    shifted = base.shifted(theta)
    other = abc.preset(second, DEPTH)
    assert shifted.a == other.a and shifted.b == other.b
    f1 = literal_trajectory(base, cell, data, steps)
    f2 = literal_trajectory(shifted, cell, data, steps)
    assert np.abs(f1 - f2).max() <= 1e-10 * max(np.abs(f1).max(), 1.0)
    wrong = abc.ABC(other.a, other.b, base.c, base.mult, base.init, base.lr)  # c not shifted
    f3 = literal_trajectory(wrong, cell, data, steps)
    assert np.abs(f1[-1] - f3[-1]).max() > 1e-2 * np.abs(f1[-1]).max()


def test_presets_sit_at_their_kappa_exponents():
    """s = (L+1)/2 − Σ(a+b): ½ for SP/NTP, 0 for μP/MFP, at every depth; the cell's κ agrees."""
    for depth in (1, 2, 4):
        got = {n: abc.kappa_exponent(abc.preset(n, depth)) for n in abc.PRESETS}
        assert got == {"sp": 0.5, "ntp": 0.5, "mup": 0.0, "mfp": 0.0}
    sc = resolve_scales(validate_cell(dict(m=64, depth=3, parameterization="sp")))
    assert np.log(sc.kappa) / np.log(64) == pytest.approx(0.5, abs=1e-12)
    rates = abc.layer_rates(abc.preset("mup", 2), 64)
    assert rates == pytest.approx((64.0, 1.0, 1 / 64))


def test_bad_parameterization_is_named():
    with pytest.raises(ConfigError, match="parameterization"):
        validate_cell(dict(m=8, parameterization="mu"))
    with pytest.raises(ConfigError, match=r"parameterization\.c.*depth \+ 1"):
        validate_cell(dict(m=8, depth=2, parameterization=dict(a=[0, 0, 0], b=[0, 0, 0], c=[0, 0])))
    with pytest.raises(ConfigError, match="'scheme'"):
        validate_cell(dict(m=8, parameterization="mup", scheme="kaiming"))


def _catapult_run(lr_c):
    cell = validate_cell(
        dict(m=256, d=4, n=16, n_test=8, lr_policy="critical", lr_c=lr_c, safeguard="none",
             max_steps=200, tol_rel=1e-8, n_snapshots=200, n_gram_snapshots=20)
    )  # fmt: skip
    run = train_replicas([cell])
    res = run.result
    lam0 = run.theta0_eigs[0, -1] / 16
    lam_t = np.linalg.eigvalsh(res.gram[0, -1].sum(0))[-1] / 16
    return res, run.lr0[0], lam0, lam_t


def test_catapult_between_two_and_four_over_lambda_max():
    """Two-layer ReLU, NTK scaling, m = 256: at η = 1.5 η_crit = 3/λ_max(Θ0/n) with
    ``safeguard: none`` the loss rises ~4000-fold within 10 steps, then falls below 1e-2 of its
    start while λ_max(Θ) drops from 3/η to below 2/η (measured 0.83/η); at 0.9 η_crit it
    falls from the first step and Θ stays put."""
    res, eta, lam0, lam_t = _catapult_run(1.5)
    loss = res.train_loss[0]
    peak = int(np.argmax(loss))
    assert eta * lam0 == pytest.approx(3.0, rel=1e-12)
    assert res.status[0] == "max_steps" and not res.events
    assert 3 <= peak <= 20 and loss[peak] > 1e3 * loss[0]
    assert loss[-1] < 1e-2 * loss[0]
    assert 0.6 < eta * lam_t < 1.1  # the kernel flattened: the catapult's signature
    res, eta, lam0, lam_t = _catapult_run(0.9)
    assert int(np.argmax(res.train_loss[0])) == 0
    assert eta * lam_t == pytest.approx(1.8, abs=0.02)


def test_diverged_replica_is_recorded_not_dropped():
    """Past the catapult range (η = 5/λ_max) the loss blows up: the replica stops as diverged,
    with an event, its trajectory kept up to its last finite state."""
    res, eta, _, _ = _catapult_run(2.5)
    assert res.status == ["diverged"] and res.events[0].kind == "diverged"
    assert res.events[0].lr_new == res.events[0].lr_old == pytest.approx(eta)
    assert np.isfinite(res.train_loss[0]).all() and res.final_step[0] < 20


def test_population_sgd_honours_the_layer_rates():
    """Population SGD, one step: doubling the constant C_1 of layer 1 doubles ΔW1 exactly and
    leaves the other layers' first step unchanged (same batch, same seed)."""
    base = dict(a=[0, 0, 0.5], b=[0, 0.5, 0.5], c=[-1, 0, 0])

    def first_step(c1):
        spec = {**base, "constants": {"c": [c1, 1.0, 1.0]}}
        cell = _cell(spec, batch_size=5)
        cell = validate_cell({**cell, "max_steps": 1, "n_snapshots": 2})
        w = train_replicas([cell]).result.weights
        return [layer[0, -1] - layer[0, 0] for layer in w]

    one, two = first_step(1.0), first_step(2.0)
    assert np.abs(one[0]).max() > 1e-4
    np.testing.assert_allclose(two[0], 2 * one[0], rtol=1e-12, atol=1e-15)
    for a, b in zip(one[1:], two[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_linearized_run_uses_the_weighted_kernel():
    """μP's linearized run is kernel GD with Σ_l r_l Θ0[l] (r = (m, 1, 1/m)): its training loss
    equals the explicit iteration e ← (I − η Σ r_l Θ0[l]/n) e to 1e-12, and differs from the
    unweighted kernel's."""
    from lazyphase.core.kernels import per_layer_ntk

    cell = _cell("mup")
    run = train_replicas([cell])
    rep = run.replicas[0]
    x, y = rep.data.x_train[None], rep.data.y_train
    alpha = torch.tensor([rep.scales.alpha], dtype=torch.float64)
    ps = [p.clone() for p in run.params0]
    per = per_layer_ntk(ps, x, RELU, alpha, False)[0].numpy()
    rates = np.asarray(abc.layer_rates(abc.preset("mup", DEPTH), M))
    e0 = forward(ps, x, RELU, alpha, False).out[0].numpy() - y.numpy()

    def losses(kernel):
        e, out = e0.copy(), []
        for k in range(STEPS + 1):
            if k in set(run.result.steps.tolist()):
                out.append(0.5 * np.mean(e**2))
            e = e - LR * kernel @ e / len(e)
        return np.asarray(out)

    weighted = losses(np.tensordot(rates, per, axes=1))
    np.testing.assert_allclose(run.linearized.train_loss[0], weighted, rtol=1e-12)
    plain = losses(per.sum(0))
    assert np.abs(plain[-1] - weighted[-1]) > 1e-3 * weighted[0]


def test_critical_step_is_two_over_lambda_max_on_a_quadratic():
    """On R(θ) = (1/2n)‖Jθ − y‖² (the project's loss; Θ = J Jᵀ) GD contracts iff
    η λ_max(Θ/n) < 2: at 0.98 η_crit the loss falls, at 1.02 η_crit it grows by
    |1 − 2·1.02|^{2k} = 1.04^{2k} in the top mode; the policy and the closed-form linearized run
    (core/linearized.py) agree."""
    from lazyphase.core.linearized import replica_run
    from lazyphase.core.training.step_size import critical_lr, initial_lr

    rng = np.random.default_rng(0)
    n, p, k = 10, 30, 400
    jac, y = rng.normal(size=(n, p)), rng.normal(size=n)
    theta = jac @ jac.T
    lam = np.linalg.eigvalsh(theta / n)[-1]
    assert initial_lr({"lr_policy": "critical", "lr_c": 1.0}, None, lam) == critical_lr(lam)
    assert critical_lr(lam) == pytest.approx(2 / lam, rel=1e-15)

    def gd_loss(eta):
        w = np.zeros(p)
        for _ in range(k):
            w -= eta * jac.T @ (jac @ w - y) / n
        return 0.5 * np.mean((jac @ w - y) ** 2)

    loss0 = 0.5 * np.mean(y**2)
    assert gd_loss(0.98 * critical_lr(lam)) < 0.5 * loss0
    u_top = np.linalg.eigh(theta)[1][:, -1]
    grown = gd_loss(1.02 * critical_lr(lam))
    assert grown == pytest.approx(0.5 * (u_top @ y) ** 2 / n * 1.04 ** (2 * k), rel=1e-3)
    eta = 1.02 * critical_lr(lam)
    _, lin, _ = replica_run(theta, np.zeros((1, n)), -y, np.zeros(1), np.zeros(1), np.zeros(1),
                            [(0, k, eta)], [k])  # fmt: skip
    assert lin[0] == pytest.approx(grown, rel=1e-9)


def test_ntk_step_rule_normalises_the_weighted_kernel():
    """lr_policy ntk with μP: η λ_max(Σ_l r_l Θ0[l]/n) = lr_c, the kernel recomputed here."""
    from lazyphase.core.kernels import per_layer_ntk

    cell = validate_cell({**_cell("mup"), "lr_policy": "ntk", "lr_c": 0.7})
    run = train_replicas([cell])
    rep = run.replicas[0]
    alpha = torch.tensor([rep.scales.alpha], dtype=torch.float64)
    per = per_layer_ntk(run.params0, rep.data.x_train[None], RELU, alpha, False)[0].numpy()
    rates = abc.layer_rates(abc.preset("mup", DEPTH), M)
    lam = np.linalg.eigvalsh(np.tensordot(rates, per, axes=1))[-1] / cell["n"]
    assert run.lr0[0] * lam == pytest.approx(0.7, rel=1e-10)
    assert run.lr0[0] * np.linalg.eigvalsh(per.sum(0))[-1] / cell["n"] != pytest.approx(
        0.7, rel=0.05
    )
