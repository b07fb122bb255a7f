"""The Note's C6 loop (issue: C6 as the Note ran it): the step on R is η/A³ and the early-stopping
δ is on F_A = R/A²."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyphase.cells import ConfigError, validate_cell
from lazyphase.core.model import resolve_scales
from lazyphase.core.train import stop_settings, train_replicas

A, TAU = 5.6, 0.4


def note_cell(**kw):
    base = dict(model="chizat", m=6, d=5, n=7, n_test=9, seeds=[0], tau=TAU, chizat_alpha=A,
                chizat_alpha_power=0.0, lr_policy="chizat_alpha", lr_c=0.1, lr_max=10.0,
                step_on="note_c6", delta_on="F_alpha", n_gram_snapshots=0, tol_rel=1e-30)  # fmt: skip
    return validate_cell({**base, **kw})


def test_two_steps_on_R_are_eta_over_A_cubed():
    """Two trainer steps equal two hand-computed GD steps w ← w − (η/A³) ∇R(w), autograd."""
    cell = note_cell(max_steps=2)
    run = train_replicas([cell])
    assert run.result.final_step[0] == 2 and not len(run.result.events)
    data = run.replicas[0].data
    eta = min(10.0, 0.1 / (TAU * A) ** 2)  # the Note's η = min(10, 0.1/τ²/A²)
    w = [p[0].clone() for p in run.params0]
    for _ in range(2):
        w = [p.requires_grad_(True) for p in w]
        f = A * (torch.relu(data.x_train @ w[0].T) @ w[1])
        risk = 0.5 * ((f - data.y_train) ** 2).mean()
        grads = torch.autograd.grad(risk, w)
        w = [(p - eta / A**3 * g).detach() for p, g in zip(w, grads)]
    for p_hand, p_run in zip(w, run.result.params_final):
        np.testing.assert_allclose(p_run[0].numpy(), p_hand.numpy(), rtol=1e-12, atol=1e-15)
    assert run.lr0[0] == pytest.approx(eta / A**3, rel=1e-14)


def test_delta_on_F_alpha_is_delta_times_A_squared_on_R():
    cell = note_cell(delta=1e-4, patience=100)
    settings = stop_settings([cell], [resolve_scales(cell)])
    assert settings["delta"] == pytest.approx(1e-4 * A**2, rel=1e-14)
    assert stop_settings([note_cell(delta_on="R")], [resolve_scales(cell)])["delta"] == 1e-4


def test_delta_on_F_alpha_refuses_a_batch_with_two_multipliers():
    cells = [note_cell(), note_cell(chizat_alpha=32.0)]
    with pytest.raises(ValueError, match="one output multiplier A per batch"):
        stop_settings(cells, [resolve_scales(c) for c in cells])


def test_note_keys_need_model_chizat():
    for key, value in (("step_on", "note_c6"), ("delta_on", "F_alpha")):
        with pytest.raises(ConfigError, match=key):
            validate_cell({"m": 8, key: value})


def synthetic_c6(q: float, *, seeds=range(6), noise=0.02, rng_seed=0):
    """Runs of both conventions whose log quantity is log A + q log τ plus seed noise: ours as
    the final test R, the Note's as min_t R / A² (so its map is the same after the division)."""
    import pandas as pd

    rng = np.random.default_rng(rng_seed)
    rows = []
    for step_on in ("R", "note_c6"):
        for tau in np.logspace(-2, 1, 7):
            for a in np.logspace(0, 3, 7):
                for s in seeds:
                    value = 10 ** (np.log10(a) + q * np.log10(tau) + noise * rng.normal())
                    scale = a**2 if step_on == "note_c6" else 1.0
                    rows.append(dict(step_on=step_on, tau=tau, chizat_multiplier=a, seed=s,
                                     layer=1, test_loss_final=value if scale == 1 else np.nan,
                                     test_loss_best=value * scale))  # fmt: skip
    return pd.DataFrame(rows)


def test_c6_quantity_and_seed_bootstrap_interval_cover_a_known_q():
    from lazyphase.studies.chizat.analysis import alpha_tau_fit, c6_convention

    runs = synthetic_c6(1.5)
    conv = c6_convention(runs)
    for name in ("ours", "note"):
        res = alpha_tau_fit(runs[conv == name], n_boot=100)
        assert res.fit.q == pytest.approx(1.5, abs=0.05), name
        assert res.contains(1.5) and not res.contains(2.0), (name, res)
        assert res.fitted == 1.0 and res.n_seeds == 6
        assert res.q_high - res.q_low < 0.1


def test_c6_one_seed_gives_no_interval():
    from lazyphase.studies.chizat.analysis import alpha_tau_fit

    res = alpha_tau_fit(synthetic_c6(2.0, seeds=[0]).query("step_on == 'R'"), n_boot=20)
    assert res.fit.q == pytest.approx(2.0, abs=0.05)
    assert np.isnan(res.q_low) and np.isnan(res.q_high) and not res.contains(2.0)


def test_c6_figure_has_one_panel_per_convention(tmp_path):
    from lazyphase.studies.chizat.figures import plot_alpha_tau

    runs = synthetic_c6(2.0).assign(m=50, d=10)
    plot_alpha_tau(runs, str(tmp_path / "c6.pdf"), str(tmp_path / "c6.png"))
    assert (tmp_path / "c6.png").stat().st_size > 5000
