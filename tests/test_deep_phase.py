"""B2 (deep phase diagram) and B3 (condensation): the deep:γ_h scheme and its κ, the grid
translation, the per-layer table and boundary on synthetic data with known exponents, the
bisection step, and the effective number of directions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lazyphase.cells import ConfigError, validate_cell
from lazyphase.core.model import deep_outer_gamma, resolve_scales
from lazyphase.pipeline.grid import deep_grid, expand_config
from lazyphase.studies.deep_phase.analysis import deep_phase_table, next_s
from lazyphase.studies.phase.condensation import effective_directions, luo_regime

WIDTHS = (32, 64, 128, 256, 512)
SEEDS = (0, 1, 2, 3)


@pytest.mark.parametrize("depth,gh,s,alpha", [(2, 0.5, -0.5, 1.0), (3, 0.25, 0.3, 2.0),
                                              (2, 1.0, 0.75, 1.0), (4, 0.0, -1.0, 1.0)])  # fmt: skip
def test_deep_scheme_scales(depth, gh, s, alpha):
    """β_l = m^{-γ_h} (l = 2..L), β_1 = β_{L+1} = √α m^{-γ_o}, κ = m^{(L+1)/2} Π β / α = m^s."""
    m = 300
    sc = resolve_scales(
        validate_cell(dict(m=m, depth=depth, scheme=f"deep:{gh}", s=s, alpha=alpha))
    )
    b = sc.betas
    assert len(b) == depth + 1 and b[0] == pytest.approx(b[-1])
    for bl in b[1:-1]:
        assert -math.log(bl) / math.log(m) == pytest.approx(gh)
    assert m ** ((depth + 1) / 2) * math.prod(b) / sc.alpha == pytest.approx(m**s, rel=1e-10)
    g_o = -math.log(b[0] / math.sqrt(alpha)) / math.log(m)
    assert g_o == pytest.approx(deep_outer_gamma(depth, s, gh))
    assert g_o == pytest.approx(((depth + 1) / 2 - (depth - 1) * gh - s) / 2)


def test_deep_scheme_at_depth_one_is_luo_zero():
    for s in (-0.5, 0.25):
        a = resolve_scales(validate_cell(dict(m=128, scheme="deep:0.7", s=s))).betas
        b = resolve_scales(validate_cell(dict(m=128, scheme="luo:0", s=s))).betas
        assert a == pytest.approx(b)


def test_deep_grid_translation_and_errors():
    exp = dict(kind="deep_phase_diagram", grid=dict(m=[16, 32], s=[0.0, 0.5], gamma_h=[0.25, 0.5],
               depth=[2]), seeds=[0], figures=["deep_phase_diagram"],
               exclude=[{"gamma_h": 0.25, "s": 0.5}])  # fmt: skip
    g = deep_grid("x", exp)
    assert g["grid"]["scheme"] == ["deep:0.25", "deep:0.5"] and "gamma_h" not in g["grid"]
    assert g["exclude"] == [{"scheme": "deep:0.25", "s": 0.5}]
    cells = expand_config({"experiments": {"x": exp}})
    assert len(cells) == 2 * 2 * 2 - 2
    assert set(cells["kind"]) == {"deep_phase_diagram"}
    with pytest.raises(ConfigError, match="gamma_h"):
        deep_grid("x", {**exp, "grid": dict(m=[16], s=[0.0])})
    with pytest.raises(ConfigError, match="scheme"):
        deep_grid("x", {**exp, "fixed": {"scheme": "lecun"}})
    with pytest.raises(ConfigError, match="figures"):
        expand_config({"experiments": {"x": {**exp, "figures": ["phase_diagram"]}}})


def _synthetic(star, ghs, ss, *, noise=0.03, seed=0) -> pd.DataFrame:
    """``RD(layer) = m^{-(s − star(layer, γ_h))}`` with per-seed noise: layer boundary known."""
    rng = np.random.default_rng(seed)
    rows = []
    for gh in ghs:
        for s in ss:
            for sd in SEEDS:
                for m in WIDTHS:
                    for layer, name in ((1, "W1"), (2, "W2"), (3, "a")):
                        e = s - star(layer, gh)
                        rd = 0.5 * m ** (-e) * math.exp(rng.normal(0, noise))
                        rows.append(dict(scheme=f"deep:{gh:g}", s=s, activation="tanh", depth=2,
                                         m=m, seed=sd, layer=layer, layer_name=name, rd_final=rd,
                                         status="converged", final_step=100))  # fmt: skip
    return pd.DataFrame(rows)


def test_per_layer_table_and_boundary():
    star = lambda layer, gh: -0.3 + 0.1 * layer + 0.2 * gh
    runs = _synthetic(star, [0.0, 0.5, 1.0], [-0.75, -0.5, -0.25, 0.0, 0.25, 0.5])
    phase, boundary = deep_phase_table(runs, n_boot=100)
    assert len(phase) == 3 * 6 * 3 and len(boundary) == 3 * 3
    assert set(phase["regime"]) == {"linear", "condensed"}
    assert (phase.loc[phase["slope"] < 0, "regime"] == "linear").all()
    # only flat (critical) fits have a low R²: the cells on a layer's boundary
    assert (phase.loc[phase["hatched"], "slope"].abs() < 0.05).all()
    for r in boundary.itertuples():
        assert r.s_star == pytest.approx(star(r.layer, r.gamma_h), abs=0.03)
        assert r.s_star_low <= r.s_star + 1e-9 <= r.s_star_high + 2e-9
        assert r.bracket_low <= r.s_star <= r.bracket_high
        assert r.linear_above_0 == (star(r.layer, r.gamma_h) < 0.25)
    runs.loc[(runs["s"] == -0.75) & (runs["seed"] == 0), "status"] = "max_steps"
    phase, _ = deep_phase_table(runs, n_boot=0)
    assert phase.loc[phase["s"] == -0.75, "hatched"].all()
    assert (phase.loc[phase["s"] == -0.75, "n_max_steps"] == len(WIDTHS)).all()
    assert not phase.loc[(phase["s"] > -0.75) & (phase["slope"].abs() > 0.05), "hatched"].any()


def test_next_s_bisects_every_layer():
    star = lambda layer, gh: -0.6 + 0.2 * layer  # -0.4, -0.2, 0.0
    runs = _synthetic(star, [0.5], [-0.75, -0.25, 0.25])
    mids = next_s(runs, tol=0.05)
    # W1 (-0.4) and W2 (-0.2) in [-0.75, -0.25]: -0.5; a (0.0) in [-0.25, 0.25]: 0.0 (merged)
    assert sorted(p["s"] for p in mids) == [-0.5, 0.0]
    assert {p["scheme"] for p in mids} == {"deep:0.5"}
    assert next_s(runs, tol=0.3) == []


def test_effective_directions():
    rng = np.random.default_rng(0)
    assert effective_directions(np.full(50, 0.3), None, 72) == pytest.approx(1.0)
    two = np.r_[np.full(25, 0.3), np.full(25, -2.0)]
    assert effective_directions(two, None, 72) == pytest.approx(2.0)
    assert effective_directions(two, np.r_[np.ones(25), np.full(25, 1e-12)], 72) == pytest.approx(
        1.0, abs=1e-6
    )
    uni = np.linspace(-math.pi, math.pi, 72, endpoint=False) + 0.01
    assert effective_directions(uni, None, 72) == pytest.approx(72.0)
    assert 30 < effective_directions(rng.uniform(-math.pi, math.pi, 2000), None, 72) <= 72
    assert [luo_regime(g) for g in (0.5, 1.0, 1.75)] == ["linear", "critical", "condensed"]
