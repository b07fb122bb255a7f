"""B1 (Luo et al. 2021 phase diagram): coordinates, the S_w fit and boundary on synthetic data
with known exponents, the bisection step, and a real bisection round."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lazyphase.cells import ConfigError, validate_cell
from lazyphase.core.model import resolve_scales
from lazyphase.pipeline.grid import expand_config, luo_grid
from lazyphase.pipeline.steps import bisect_boundary
from lazyphase.store.runs import load_run
from lazyphase.store.tables import collect
from lazyphase.studies.phase.analysis import (
    luo_boundary,
    luo_coordinates,
    next_gammas,
    phase_table,
    scaling_boundary,
)

WIDTHS = (32, 64, 128, 256, 512, 1024)
SEEDS = (0, 1, 2, 3)


def synthetic_runs(exponent, gps, gammas, *, noise=0.05, seed=0) -> pd.DataFrame:
    """A ``runs`` table with ``RD(W1) = C · m^(−exponent(γ', γ)) · exp(noise · ε)`` per seed."""
    rng = np.random.default_rng(seed)
    rows = []
    for gp in gps:
        for g in gammas:
            for sd in SEEDS:
                jitter = rng.normal(0, noise)  # a per-seed offset (same for every width)
                for m in WIDTHS:
                    rd = 0.7 * m ** (-exponent(gp, g)) * math.exp(jitter + rng.normal(0, noise))
                    for layer, name, val in ((1, "W1", rd), (2, "a", 0.1)):
                        rows.append(
                            dict(
                                scheme=f"luo:{gp:g}",
                                s=round(1 - g, 12),
                                activation="relu",
                                depth=1,
                                m=m,
                                seed=sd,
                                layer=layer,
                                layer_name=name,
                                rd_final=val,
                                status="converged",
                            )
                        )
    return pd.DataFrame(rows)


def luo_exponent(gp: float, g: float) -> float:
    """A known S_w whose sign change is Luo et al.'s boundary: γ = 1 (γ' ≤ 0), 1 + γ' (γ' > 0)."""
    return float(luo_boundary(gp)) - g


def test_luo_coordinates_and_run_attributes(tmp_path):
    """γ = 1 − s and γ' = −log(β2/β1)/log m, from the scales and in the run file's attributes
    (γ, γ', β1, β2, α, κ); κ = m β1 β2 / α = m^s."""
    from lazyphase.pipeline.jobs import train_cells

    for m, gp, s, alpha in ((64, -0.5, 0.25, 1.0), (1000, 0.75, -0.5, 3.0)):
        cell = validate_cell(dict(m=m, scheme=f"luo:{gp}", s=s, alpha=alpha))
        sc = resolve_scales(cell)
        b1, b2 = sc.betas
        assert -math.log(b1 * b2 / sc.alpha) / math.log(m) == pytest.approx(1 - s, abs=1e-12)
        assert -math.log(b2 / b1) / math.log(m) == pytest.approx(gp, abs=1e-12)
        assert m * b1 * b2 / sc.alpha == pytest.approx(m**s, rel=1e-12)
        assert luo_coordinates(cell["scheme"], s) == (gp, pytest.approx(1 - s, abs=1e-12))
    cell = dict(m=16, scheme="luo:0.5", s=0.25, alpha=2.0, n=4, d=3, max_steps=3, seeds=[0])
    out = str(tmp_path / "c.h5")
    train_cells([cell], [out])
    a = load_run(out).attrs
    assert a["gamma_luo"] == pytest.approx(0.75) and a["gamma_prime"] == pytest.approx(0.5)
    b1, b2 = a["betas"]
    assert a["alpha"] == 2.0 and a["kappa"] == pytest.approx(16 * b1 * b2 / 2.0, rel=1e-12)
    assert b2 / b1 == pytest.approx(16**-0.5, rel=1e-12)


def test_phase_grid_translates_gamma_to_s_and_scheme():
    exp = dict(
        kind="phase_diagram",
        grid=dict(m=[32, 64], gamma_prime=[-0.5, 0.5], gamma=[0.25, 1.75]),
        exclude=[dict(gamma=1.75, gamma_prime=0.5)],
        figures=["phase_diagram"],
    )
    out = luo_grid("b1", exp)
    assert out["grid"]["s"] == [0.75, -0.75]
    assert out["grid"]["scheme"] == ["luo:-0.5", "luo:0.5"]
    cells = expand_config({"experiments": {"b1": exp}})
    assert len(cells) == 2 * 2 * 2 - 2  # the excluded (γ', γ) at both widths
    assert {(p["scheme"], p["s"]) for p in cells["params"]} == {
        ("luo:-0.5", 0.75), ("luo:-0.5", -0.75), ("luo:0.5", 0.75),
    }  # fmt: skip
    with pytest.raises(ConfigError, match="gamma_prime"):
        luo_grid("b1", {**exp, "grid": dict(m=[32], gamma=[1.0])})
    with pytest.raises(ConfigError, match=r"\['s'\]"):
        luo_grid("b1", {**exp, "fixed": dict(s=0.5)})


def test_exponent_fit_and_boundary_on_synthetic_data():
    """Known S_w(γ', γ) = (Luo boundary) − γ: the fitted S_w within 0.03, the boundary γ* within
    0.02 of the truth where the grid brackets it, with a bootstrap interval narrower than 0.1."""
    gps = (-1.0, -0.5, 0.0, 0.5, 1.0)
    gammas = (0.3, 0.55, 0.8, 1.05, 1.3, 1.55, 1.8)  # no grid point on a boundary
    runs = synthetic_runs(luo_exponent, gps, gammas)
    phase, boundary = phase_table(runs, n_boot=200, ci=0.9)
    truth = np.array([luo_exponent(gp, g) for gp, g in zip(phase["gamma_prime"], phase["gamma"])])
    assert np.abs(phase["S_w"].to_numpy() - truth).max() < 0.03
    assert (phase["S_w_low"] <= phase["S_w"]).all() and (phase["S_w"] <= phase["S_w_high"]).all()
    assert set(phase["regime"]) == {"linear", "condensed"}
    b = boundary.set_index("gamma_prime")
    for gp in (-1.0, -0.5, 0.0, 0.5):
        assert b.loc[gp, "gamma_star"] == pytest.approx(float(luo_boundary(gp)), abs=0.02)
        lo, hi = b.loc[gp, "gamma_star_low"], b.loc[gp, "gamma_star_high"]
        assert lo <= b.loc[gp, "gamma_star"] <= hi and hi - lo < 0.1
    assert b.loc[0.5, "nearer"] == "luo" and b.loc[0.5, "scaling_line"] == 2.0
    assert not b.loc[0.5, "scaling_in_ci"]
    # the boundary at γ' = 1 is γ = 2, outside the grid: no crossing, said so
    assert np.isnan(b.loc[1.0, "gamma_star"]) and "no crossing" in b.loc[1.0, "note"]
    assert scaling_boundary(-0.5) == 1.0 and scaling_boundary(0.25) == 1.5


def test_hatching_marks_poor_fits_and_unconverged_cells():
    runs = synthetic_runs(luo_exponent, (0.0,), (0.5, 1.0, 1.5), noise=0.01)
    runs.loc[(runs["s"] == 0.5) & (runs["seed"] == 0), "status"] = "max_steps"
    phase, _ = phase_table(runs, n_boot=0, r2_min=0.5)
    by_g = phase.set_index("gamma")
    assert by_g.loc[0.5, "hatched"]  # a replica did not converge
    assert by_g.loc[1.0, "hatched"]  # S_w = 0: RD flat in m, R² ~ 0
    assert not by_g.loc[1.5, "hatched"]
    assert by_g.loc[0.5, "n_converged"] == len(WIDTHS) * (len(SEEDS) - 1)


def test_bisection_step_halves_the_bracket():
    """S_w = 1.1 − γ on the grid 0.5, 1, 1.5: bracket [1, 1.5] → 1.25; a bracket of width 0.1
    with tol 0.05 is done."""
    runs = synthetic_runs(lambda gp, g: 1.1 - g, (0.0,), (0.5, 1.0, 1.5), noise=0.0)
    assert next_gammas(runs, tol=0.05) == {"luo:0": 1.25}
    runs = synthetic_runs(lambda gp, g: 1.1 - g, (0.0,), (1.0, 1.1, 1.2), noise=0.0)
    assert next_gammas(runs, tol=0.05) == {}
    # no sign change: nothing to refine
    runs = synthetic_runs(lambda gp, g: 2.0 - g, (0.0,), (0.5, 1.0, 1.5), noise=0.0)
    assert next_gammas(runs, tol=0.05) == {}


def test_refine_trains_the_midpoint_cells(tmp_path):
    """A real bisection round: the linear side at γ = 0.5 and the condensed side at γ = 1.5
    (γ' = 0) bracket the boundary, so one round adds γ = 1.0 at both widths; the γ* after
    the round is within 0.2 of Luo et al.'s γ = 1."""
    from lazyphase.pipeline.jobs import train_cells

    base = dict(scheme="luo:0", n=8, d=4, n_test=8, max_steps=3000, seeds=[0, 1],
                n_gram_snapshots=0, n_snapshots=5)  # fmt: skip
    cells, paths = [], []
    for m in (32, 256):
        batch = [validate_cell({**base, "m": m, "s": 1 - g}) for g in (0.5, 1.5)]
        outs = [str(tmp_path / f"coarse_{m}_{i}.h5") for i in range(2)]
        train_cells(batch, outs)
        cells += batch
        paths += outs
    coarse = collect(paths, "b1")[0]
    new = bisect_boundary(cells, coarse, str(tmp_path / "refine"), "b1", tol=0.3, rounds=3)
    assert set(new["round"]) == {1}  # bracket 1 → 0.5 ≤ 2·tol after one round
    assert set(new["s"]) == {0.0} and set(new["m"]) == {32, 256}
    assert len(list((tmp_path / "refine" / "round1").rglob("*.h5"))) == 2
    _, boundary = phase_table(pd.concat([coarse, new]), n_boot=0)
    assert boundary["gamma_star"].iloc[0] == pytest.approx(1.0, abs=0.2)
