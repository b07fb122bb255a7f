"""Schemes, κ and the initial output scale, centering."""

from __future__ import annotations

import math

import pytest
import torch

from lazyphase.cells import validate_cell
from lazyphase.core import activations
from lazyphase.core.data import generator, sphere
from lazyphase.core.model import forward, init_params, resolve_scales


@pytest.mark.parametrize(
    "scheme", ["lecun", "kaiming", "xavier", "uniform:0.3", {"c": [2.0, 0.5], "gamma": [0.1, 0.4]}]
)
@pytest.mark.parametrize("via", ["output_std", "output_multiplier"])
def test_kappa_is_m_to_the_s(scheme, via):
    cell = validate_cell(dict(m=300, depth=2, d=6, s=0.37, scheme=scheme, kappa_via=via, alpha=2.0))
    sc = resolve_scales(cell)
    kappa = 300**1.5 * math.prod(sc.betas) / sc.alpha
    assert kappa == pytest.approx(300**0.37, rel=1e-12)
    assert sc.kappa == pytest.approx(300**0.37, rel=1e-12)
    if via == "output_std":
        assert sc.alpha == 2.0


def test_scheme_exponents():
    m, d = 1024, 8
    sc = resolve_scales(validate_cell(dict(m=m, depth=3, d=d, s=0.5, scheme="lecun")))
    assert sc.gammas(m)[:3] == pytest.approx((0.0, 0.5, 0.5))
    # (L+1)/2 − Σγ = s with c_l = 1, α = 1
    assert 2.0 - sum(sc.gammas(m)) == pytest.approx(0.5)
    sc = resolve_scales(validate_cell(dict(m=m, depth=2, d=d, scheme="xavier")))
    assert sc.betas[0] == pytest.approx(math.sqrt(2 / (d + m)))
    sc = resolve_scales(validate_cell(dict(m=m, depth=2, scheme="kaiming")))
    assert sc.betas[:2] == pytest.approx((math.sqrt(2), math.sqrt(2 / m)))
    sc = resolve_scales(validate_cell(dict(m=m, depth=2, scheme="uniform:0.25")))
    assert sc.betas[:2] == pytest.approx((m**-0.25, m**-0.25))


def test_luo_coordinates():
    """luo:γ' with s: γ_Luo = 1 − s and γ' = −log(β2/β1)/log m (docs/conventions.md §2)."""
    m = 4096
    for gp, s in ((-0.5, 0.0), (0.25, 0.5), (1.0, -0.75)):
        sc = resolve_scales(validate_cell(dict(m=m, scheme=f"luo:{gp}", s=s)))
        b1, b2 = sc.betas
        assert -math.log(b2 / b1) / math.log(m) == pytest.approx(gp, abs=1e-12)
        assert -math.log(b1 * b2 / sc.alpha) / math.log(m) == pytest.approx(1 - s, abs=1e-12)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_relu_output_scale_matches_kappa(depth):
    """ReLU: E f_θ0(x)² = κ² 2^{−L} / m exactly (homogeneity), at every width."""
    act = activations.get("relu")
    x = sphere(16, 6, generator(9))
    n_rep = 200
    for m in (32, 128, 256):
        cell = validate_cell(dict(m=m, depth=depth, d=6, s=0.8, scheme="uniform:0.3"))
        sc = resolve_scales(cell)
        params = init_params(cell, [sc] * n_rep, list(range(n_rep)))
        f = forward(
            params,
            x.expand(n_rep, -1, -1),
            act,
            torch.full((n_rep,), sc.alpha, dtype=torch.float64),
            False,
        ).out
        per_rep = (f**2).mean(1) / (sc.kappa**2 * 2.0**-depth / m)
        ratio, se = float(per_rep.mean()), float(per_rep.std() / n_rep**0.5)
        assert abs(ratio - 1) < 4 * se + 1e-3, (m, ratio, se)


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("bias", [False, True])
def test_symmetric_centering_gives_zero_output(depth, bias):
    cell = validate_cell(
        dict(m=64, depth=depth, bias=bias, centering="symmetric", s=1.0, activation="tanh")
    )
    sc = resolve_scales(cell)
    params = init_params(cell, [sc, sc], [0, 1])
    x = sphere(20, 8, generator(1)).expand(2, -1, -1)
    f = forward(
        params, x, activations.get("tanh"), torch.tensor([sc.alpha] * 2, dtype=torch.float64), bias
    ).out
    plain = validate_cell(dict(m=64, depth=depth, bias=bias, s=1.0, activation="tanh"))
    g = forward(
        init_params(plain, [sc, sc], [0, 1]),
        x,
        activations.get("tanh"),
        torch.tensor([sc.alpha] * 2, dtype=torch.float64),
        bias,
    ).out
    assert f.abs().max() <= 1e-12 * g.abs().max()
    assert g.abs().max() > 1.0  # the uncentered network is not trivially zero


def test_symmetric_centering_keeps_preactivation_variance():
    """The L > 1 copies have fan-in m/2 but the same pre-activation variance (N(0, 2) blocks)."""
    act = activations.get("relu")
    x = sphere(8, 8, generator(2))
    out = []
    for centering in ("none", "symmetric"):
        cell = validate_cell(dict(m=256, depth=2, centering=centering))
        sc = resolve_scales(cell)
        params = init_params(cell, [sc] * 50, list(range(50)))
        h1 = act.fn(x @ params[0].transpose(1, 2))
        z2 = torch.bmm(h1, params[1].transpose(1, 2))
        out.append(float((z2**2).mean()))
    assert out[1] == pytest.approx(out[0], rel=0.05)
