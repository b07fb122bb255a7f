"""Issue 27: the function-space boundary on B1/B2, kernel baselines beside the network and
condensation at depth — on synthetic tables with known exponents and on real tiny runs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from lazyphase.core import activations
from lazyphase.core.model import forward, layer_masks, resolve_scales
from lazyphase.core.predictors import empirical_ntk
from lazyphase.pipeline.jobs import train_cells
from lazyphase.store.runs import load_run
from lazyphase.store.tables import collect, predictor_test_loss
from lazyphase.studies.deep_phase.analysis import deep_phase_table, next_s
from lazyphase.studies.deep_phase.condensation import deep_condensation_table
from lazyphase.studies.kernels import baselines
from lazyphase.studies.phase.analysis import bisection_points, phase_table

WIDTHS = (32, 64, 128, 256)
SEEDS = (0, 1, 2, 3)


def _rows(key: dict, rd_exp: float, f_exp: float, fc_exp: float, rng, noise: float):
    out = []
    for sd in SEEDS:
        jit = rng.normal(0, noise, 3)
        for m in WIDTHS:
            vals = [0.5 * m**e * math.exp(j + rng.normal(0, noise))
                    for e, j in zip((rd_exp, f_exp, fc_exp), jit)]
            out.append(dict(**key, m=m, seed=sd, layer=1, layer_name="W1", rd_final=vals[0],
                            fdist=vals[1], fdist_conv=vals[2], status="converged",
                            final_step=10))  # fmt: skip
    return out


def b1_runs(noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """γ' = 0 on γ ∈ {0.5, 1, 1.5}: RD exponent γ − 1 (boundary at 1), fdist exponent
    γ − 1.2 (boundary at 1.2), fdist_conv exponent γ − 0.8 (boundary at 0.8)."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in (0.5, 1.0, 1.5):
        key = dict(scheme="luo:0", s=round(1 - g, 12), activation="relu", depth=1)
        rows += _rows(key, g - 1.0, g - 1.2, g - 0.8, rng, noise)
    return pd.DataFrame(rows)


def test_b1_function_boundaries_are_the_sign_changes_of_the_d_exponents():
    phase, boundary = phase_table(b1_runs(), n_boot=0, refine_on=("rd", "fdist_conv"))
    b = boundary.iloc[0]
    assert b["gamma_star"] == pytest.approx(1.0, abs=1e-9)
    assert b["gamma_star_f"] == pytest.approx(1.2, abs=1e-9)
    assert b["gamma_star_fconv"] == pytest.approx(0.8, abs=1e-9)
    assert b["refined_on"] == "rd+fdist_conv"
    assert (b["bracket_f_low"], b["bracket_f_high"]) == (1.0, 1.5)
    assert (b["bracket_fconv_low"], b["bracket_fconv_high"]) == (0.5, 1.0)
    by_g = phase.set_index("gamma")
    np.testing.assert_allclose(by_g["fdist_slope"], [0.5 - 1.2, 1.0 - 1.2, 1.5 - 1.2], atol=1e-9)
    np.testing.assert_allclose(by_g["fdist_conv_slope"], [-0.3, 0.2, 0.7], atol=1e-9)


def test_b1_function_boundary_intervals_cover_it_with_noise():
    _, boundary = phase_table(b1_runs(noise=0.05, seed=3), n_boot=200)
    b = boundary.iloc[0]
    for tag, true in (("f", 1.2), ("fconv", 0.8)):
        lo, hi = b[f"gamma_star_{tag}_low"], b[f"gamma_star_{tag}_high"]
        assert lo < hi and lo - 0.05 <= true <= hi + 0.05
        assert b[f"gamma_star_{tag}"] == pytest.approx(true, abs=0.1)


def test_bisection_refines_every_criterion_asked_for():
    runs = b1_runs()
    # RD: exponent 0 at γ = 1 counts as the condensed side, bracket [1, 1.5]
    assert bisection_points(runs, 0.05, ("rd",)) == [("luo:0", 1.25)]
    assert bisection_points(runs, 0.05, ("fdist_conv",)) == [("luo:0", 0.75)]
    assert bisection_points(runs, 0.05, ("rd", "fdist", "fdist_conv")) == [
        ("luo:0", 0.75), ("luo:0", 1.25)]  # fmt: skip
    with pytest.raises(ValueError, match="unknown bisection criteria"):
        bisection_points(runs, 0.05, ("loss",))


def b2_runs() -> pd.DataFrame:
    """deep:0.5, L = 2, s ∈ {−0.5, 0, 0.5}: every layer's RD exponent −s (boundary 0), fdist
    exponent 0.25 − s (boundary 0.25), fdist_conv exponent −0.25 − s (boundary −0.25)."""
    rng = np.random.default_rng(0)
    rows = []
    for s in (-0.5, 0.0, 0.5):
        key = dict(scheme="deep:0.5", s=s, activation="relu", depth=2)
        for layer, name in ((1, "W1"), (2, "W2"), (3, "a")):
            part = _rows(key, -s, 0.25 - s, -0.25 - s, rng, 0.0)
            rows += [{**r, "layer": layer, "layer_name": name} for r in part]
    return pd.DataFrame(rows)


def test_b2_function_boundaries_on_every_layer_row():
    _, boundary = deep_phase_table(b2_runs(), n_boot=0)
    assert len(boundary) == 3
    np.testing.assert_allclose(boundary["s_star"], 0.0, atol=1e-9)
    np.testing.assert_allclose(boundary["s_star_f"], 0.25, atol=1e-9)
    np.testing.assert_allclose(boundary["s_star_fconv"], -0.25, atol=1e-9)
    assert set(boundary["refined_on"]) == {"rd"}
    mids = next_s(b2_runs(), 0.05, ("fdist", "fdist_conv"))
    assert sorted(p["s"] for p in mids) == [-0.25, 0.25]


def _tiny(tmp_path, name: str, **kw) -> str:
    cell = {**dict(m=16, n=6, d=3, n_test=7, max_steps=300, n_gram_snapshots=0, n_snapshots=5,
                   seeds=[0, 1], activation="tanh"), **kw}  # fmt: skip
    out = str(tmp_path / f"{name}.h5")
    train_cells([cell], [out])
    return out


def _theta(run, r: int, stage: str = "init"):
    cell = run.cell
    act = activations.get(cell["activation"])
    alpha = torch.tensor([resolve_scales(cell).alpha], dtype=torch.float64)
    p = baselines.replica_params(run, r, stage)
    x_tr = torch.as_tensor(run["data/x_train"][r : r + 1])
    x_te = torch.as_tensor(run["data/x_test"][r : r + 1])
    theta, cross = empirical_ntk(p, x_tr, x_te, act, alpha, cell["bias"], layer_masks(cell))
    f0_tr = forward(baselines.replica_params(run, r, "init"), x_tr, act, alpha, cell["bias"]).out
    return theta[0], cross[0], f0_tr[0].numpy()


@pytest.mark.parametrize("centering", ["none", "subtract_initial"])
def test_stored_converged_predictor_is_a_direct_linear_solve(tmp_path, centering):
    """(b) = f(θ0)(x) + Θ0(x, X) Θ0⁻¹ (y + f0c(X) − f(θ0)(X)) with numpy's solve (Θ0 full rank
    on n = 6 points), to 1e-10; the table's test-loss convention is the trainer's."""
    run = load_run(_tiny(tmp_path, centering, s=0.25, centering=centering, scheme="lecun"))
    for r in range(2):
        theta, cross, f0_tr = _theta(run, r)
        y = run["data/y_train"][r] + (f0_tr if centering == "subtract_initial" else 0.0)
        direct = run["replicas/test_output0"][r] + cross @ np.linalg.solve(theta, y - f0_tr)
        np.testing.assert_allclose(run["linearized/test_output_converged"][r], direct,
                                   rtol=0, atol=1e-10 * np.abs(direct).max())  # fmt: skip
        net = predictor_test_loss(run, r, run["replicas/test_output_final"][r])
        assert net == pytest.approx(run["trajectory/test_loss"][r, -1], rel=1e-10)
    runs = collect([run.path], "x")[0]
    assert np.isfinite(runs["fdist_conv"]).all() and np.isfinite(runs["test_loss_conv"]).all()


def test_after_kernel_equals_theta0_predictor_when_the_kernel_cannot_move(tmp_path):
    """(c) with Θ_T = Θ0 (final weights replaced by the initial ones) is (b) to 1e-10."""
    run = load_run(_tiny(tmp_path, "c", s=0.25, scheme="lecun"))
    frozen = dict(run.arrays)
    for k in [k for k in frozen if k.startswith("weights/final/")]:
        frozen[k] = frozen[k.replace("/final/", "/init/")]
    row = baselines.run_rows(dataclasses.replace(run, arrays=frozen))
    for r in row:
        assert r["test_loss_after"] == pytest.approx(r["test_loss_theta0"], rel=1e-10)
        assert r["note_after"] == ""


def test_kernel_baseline_table_and_where_the_limit_does_not_exist(tmp_path):
    paths = [_tiny(tmp_path, "lecun", s=0.25, scheme="lecun", centering="symmetric"),
             _tiny(tmp_path, "step", s=0.25, scheme="uniform:-0.25")]  # fmt: skip
    t = baselines.baseline_table(paths)
    assert len(t) == 4 and set(t.columns) >= {f"test_loss_{p}" for p in baselines.PREDICTORS}
    lec, step = t[t["scheme"] == "lecun"], t[t["scheme"] == "uniform:-0.25"]
    assert np.isfinite(lec[[f"test_loss_{p}" for p in baselines.PREDICTORS]]).all().all()
    assert lec["ntk_inf_is_limit_of_theta0"].all()
    # tanh with β_1 = m^{1/4}: pre-activations grow, the layer is a step: no O(1) limit
    assert step["test_loss_ntk_inf"].isna().all()
    assert step["note_ntk_inf"].str.contains("step").all()
    # symmetric centering: f(θ0) = 0, so (d) is the same data-only predictor for both seeds
    assert lec["test_loss_ntk_inf"].nunique() == 1


def test_asymptotic_scheme_of_luo_and_deep_cells():
    """β_l = c_l m^{−γ_l} exactly: the explicit form reproduces the cell's stds at its m."""
    for cell in (dict(m=64, depth=1, d=3, s=0.25, scheme="luo:0.5", alpha=2.0),
                 dict(m=64, depth=3, d=3, s=-0.5, scheme="deep:0.75", alpha=1.0)):  # fmt: skip
        sch = baselines.asymptotic_scheme(cell)
        betas = [c * cell["m"] ** -g for c, g in zip(sch["c"], sch["gamma"])]
        np.testing.assert_allclose(betas, resolve_scales(cell).betas, rtol=1e-12)


def test_deep_condensation_table_counts_directions(tmp_path):
    """n_eff per hidden layer from the stored weights; a random init is about its rank."""
    path = _tiny(tmp_path, "deep", s=-0.5, scheme="deep:0.5", depth=2, activation="relu",
                 max_steps=50)  # fmt: skip
    t = deep_condensation_table([path])
    assert len(t) == 2 * 2 and list(t["layer_name"].unique()) == ["W1", "W2"]
    w1 = t[t["layer"] == 1]
    assert (w1["fan_in"] == 3).all()  # d = 3, no bias
    # 16 random rows in R^3: E n_eff = 16·3/18 = 2.67; the finite sample stays within [1.5, 3]
    assert ((w1["n_eff_init"] > 1.5) & (w1["n_eff_init"] <= 3.0)).all()
    np.testing.assert_allclose(t["n_eff_ratio"], t["n_eff_final"] / t["n_eff_init"])
