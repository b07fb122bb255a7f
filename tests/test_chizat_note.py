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
