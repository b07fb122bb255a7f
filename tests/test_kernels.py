"""Per-layer NTK by the layer identity against a torch.func Jacobian contraction (the oracle)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.func import jacrev, vmap

from lazyphase.cells import validate_cell
from lazyphase.core import activations
from lazyphase.core.data import generator, sphere
from lazyphase.core.kernels import normalization, per_layer_ntk
from lazyphase.core.model import init_params, layer_masks, resolve_scales


def oracle_f(
    params: list[torch.Tensor], x: torch.Tensor, act, alpha: float, bias: bool, masks=None
):
    """An independent single-replica network: x (d,) -> scalar, written from docs/conventions.md §2.
    Masked-out entries (symmetric centering, L > 1) are constants, not parameters."""
    h = x
    masks = masks or [None] * len(params)
    for w, mk in zip(params[:-1], masks):
        if mk is not None:
            w = torch.where(mk, w, w.detach())
        if bias:
            h = torch.cat([h, torch.ones(1, dtype=h.dtype)])
        h = act.fn(w @ h)
    if bias:
        h = torch.cat([h, torch.ones(1, dtype=h.dtype)])
    return params[-1] @ h / alpha


def oracle_ntk(params, x, act, alpha, bias, f0=None, masks=None):
    """Θ[l] = J_l J_lᵀ with J_l from vmap(jacrev) (the PyTorch NTK tutorial's contraction).
    ``f0`` (subtract_initial) is a constant and must not change the kernel."""

    def f(ps, xi):
        out = oracle_f(ps, xi, act, alpha, bias, masks)
        return out - (0.0 if f0 is None else f0(xi))

    jac = vmap(jacrev(f), (None, 0))(params, x)
    return torch.stack([torch.einsum("i...,j...->ij", j, j) for j in jac])


CASES = list(
    itertools.product(
        ["relu", "tanh", "erf", "sigmoid", "softplus", "gelu"],
        [1, 2, 3, 4],
        [False, True],
        ["none", "symmetric", "subtract_initial"],
    )
)


@pytest.mark.parametrize(("act_name", "depth", "bias", "centering"), CASES)
def test_layer_identity_matches_jacobian_contraction(act_name, depth, bias, centering):
    cell = validate_cell(
        dict(m=12, d=5, depth=depth, activation=act_name, bias=bias, centering=centering,
             s=0.3, scheme="kaiming")
    )  # fmt: skip
    sc = resolve_scales(cell)
    params = init_params(cell, [sc], [3])
    x = sphere(7, 5, generator(11))
    act = activations.get(act_name)
    alpha = torch.tensor([sc.alpha], dtype=torch.float64)
    masks = layer_masks(cell)
    ours = per_layer_ntk(params, x[None], act, alpha, bias, masks)[0]
    single = [p[0] for p in params]
    f0 = None
    if centering == "subtract_initial":
        frozen = [p.clone() for p in single]
        f0 = lambda xi: oracle_f(frozen, xi, act, sc.alpha, bias)
    ref = oracle_ntk(single, x, act, sc.alpha, bias, f0, masks)
    assert ours.shape == (depth + 1, 7, 7)
    rel = (ours - ref).norm() / ref.norm()
    assert rel < 1e-10, f"relative error {rel:.2e}"
    per_layer = (ours - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)
    assert torch.all(per_layer < 1e-10), per_layer


def test_normalized_gram_is_scale_free_for_relu():
    """For ReLU, G[l] = (m β_l²/κ²) Θ[l] does not depend on s (f = κ f̄ exactly)."""
    x = sphere(6, 4, generator(5))[None]
    act = activations.get("relu")
    grams = []
    for s in (-0.5, 0.25, 1.0):
        cell = validate_cell(dict(m=32, d=4, depth=2, s=s))
        sc = resolve_scales(cell)
        params = init_params(cell, [sc], [0])
        theta = per_layer_ntk(params, x, act, torch.tensor([sc.alpha], dtype=torch.float64), False)
        grams.append(normalization([sc], 32)[0][:, None, None] * theta[0])
    for g in grams[1:]:
        assert torch.allclose(g, grams[0], rtol=1e-10, atol=0)
