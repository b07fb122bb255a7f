"""Limiting kernels: closed forms vs quadrature, Monte Carlo at large width, regimes.

Tolerances are stated next to every assertion. The Monte Carlo oracle is written here from
docs/conventions.md §2 with plain torch (no lazyphase code) and checked against autograd at small width.
"""

from __future__ import annotations

import math

import pytest
import torch

from lazyphase.core import activations
from lazyphase.core import limiting as lm
from lazyphase.stats import linearized_rate

ACTS = ["relu", "tanh", "erf", "sigmoid", "softplus", "gelu"]
DT = torch.float64


def sphere_points(n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=DT)
    return x / x.norm(dim=1, keepdim=True)


# ------------------------------------------------------------------------------------------
# Monte Carlo oracle: the normalized network with optional variance factors s_l (v_l = s_l²)
#   z1 = s1 W̄1 x̃,  z2 = s2 m^{-1/2} W̄2 h̃1,  f̃ = (1/(s1 s2)) (1/m) āᵀ h̃_L,  x̃ = [x; 1] if bias
# and G[l] = m ⟨∇_{W̄l} f̃(x_i), ∇_{W̄l} f̃(x_j)⟩ by the layer identity (B_l B_lᵀ) ⊙ (H H ᵀ).
# ------------------------------------------------------------------------------------------


def _bias(h: torch.Tensor, bias: bool) -> torch.Tensor:
    return torch.cat([h, torch.ones(h.shape[0], 1, dtype=DT)], dim=1) if bias else h


def mc_grams(x, act, depth, m, gen, *, bias=False, s=(1.0, 1.0), w2=None, params=None):
    """Per-layer normalized Grams of one draw (depth 1 or 2), each ``(n, n)``.

    Depth 2 without ``w2``: ``W̄2`` (m × m) is never formed. With ``Q R = H̃1ᵀ`` (QR),
    ``W̄2 = A Qᵀ + W̄2 (I − QQᵀ)`` where ``A = W̄2 Q`` is an m×n standard normal matrix independent of
    ``W̄2 (I − QQᵀ)``; so ``z2 ∝ (A R)ᵀ`` and the backward term ``(I − QQᵀ) W̄2ᵀ D`` has, given ``D``,
    the law of ``(I − QQᵀ) E Cᵀ`` with ``E`` standard normal and ``C Cᵀ = Dᵀ D``. This samples the
    exact joint law of the forward and backward signals in ``O(m n²)``.
    """
    a_fn, d_fn = act.fn, act.deriv
    xt = _bias(x, bias)
    d_in = xt.shape[1]
    if params is None:
        w1 = torch.randn(m, d_in, generator=gen, dtype=DT)
        abar = torch.randn(m + int(bias), generator=gen, dtype=DT)
    else:
        w1, w2, abar = params
    s1, s2 = s[0], (s[1] if depth == 2 else 1.0)
    p = s1 * s2
    z1 = s1 * xt @ w1.T  # (n, m)
    h1 = _bias(a_fn(z1), bias)
    if depth == 1:
        b1 = abar[:m] * d_fn(z1) / (p * m)
        return [m * s1**2 * (b1 @ b1.T) * (xt @ xt.T), h1 @ h1.T / (m * p**2)]
    if w2 is None:
        q_mat, r_mat = torch.linalg.qr(h1.T)  # (m', n), (n, n)
        amat = torch.randn(m, x.shape[0], generator=gen, dtype=DT)
        z2 = s2 / math.sqrt(m) * (amat @ r_mat).T
    else:
        z2 = s2 / math.sqrt(m) * h1 @ w2.T
    h2 = _bias(a_fn(z2), bias)
    b2 = abar[:m] * d_fn(z2) / (p * m)  # (n, m) = ∂f̃/∂z2
    dmat = b2.T  # (m, n)
    if w2 is None:
        evals, evecs = torch.linalg.eigh(dmat.T @ dmat)
        c_mat = evecs * evals.clamp_min(0).sqrt()
        e_mat = torch.randn(h1.shape[1], x.shape[0], generator=gen, dtype=DT)
        noise = e_mat @ c_mat.T
        back = q_mat @ (amat.T @ dmat) + noise - q_mat @ (q_mat.T @ noise)
    else:
        back = w2.T @ dmat
    g1 = s2 / math.sqrt(m) * back[:m]  # (m, n) = ∂f̃/∂h1
    b1 = d_fn(z1) * g1.T
    return [
        m * s1**2 * (b1 @ b1.T) * (xt @ xt.T),
        s2**2 * (b2 @ b2.T) * (h1 @ h1.T),
        h2 @ h2.T / (m * p**2),
    ]


def mc_mean_se(x, act, depth, m, draws, seed, **kw):
    gen = torch.Generator().manual_seed(seed)
    samples = [torch.stack(mc_grams(x, act, depth, m, gen, **kw)) for _ in range(draws)]
    st = torch.stack(samples)
    return st.mean(0), st.std(0) / math.sqrt(draws)


@pytest.mark.parametrize("bias", [False, True])
def test_oracle_identity_matches_autograd(bias):
    """The oracle's layer identity (explicit W̄2, m = 48) equals m⟨∇f̃, ∇f̃⟩ by autograd (1e-10)."""
    act = activations.get("tanh")
    m, s = 48, (1.3, 0.7)
    x = sphere_points(4, 3, 1)
    g = torch.Generator().manual_seed(2)
    b = int(bias)
    params = [
        torch.randn(m, 3 + b, generator=g, dtype=DT),
        torch.randn(m, m + b, generator=g, dtype=DT),
        torch.randn(m + b, generator=g, dtype=DT),
    ]
    grams = mc_grams(x, act, 2, m, g, bias=bias, s=s, params=params)

    def f(w1, w2, a, xi):
        h = act.fn(s[0] * w1 @ _bias(xi[None], bias)[0])
        h = act.fn(s[1] / math.sqrt(m) * w2 @ _bias(h[None], bias)[0])
        return a @ _bias(h[None], bias)[0] / (m * s[0] * s[1])

    jac = torch.func.vmap(torch.func.jacrev(f, argnums=(0, 1, 2)), (None, None, None, 0))(
        *params, x
    )
    for layer, j in enumerate(jac):
        jj = j.reshape(x.shape[0], -1)
        assert torch.allclose(grams[layer], m * jj @ jj.T, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# closed forms vs quadrature
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "on_sphere"), [("chebyshev", True), ("direct", True), ("auto", False)]
)
@pytest.mark.parametrize("variance", [1.0, 2.5])
def test_erf_quadrature_matches_closed_form(method, on_sphere, variance):
    """Adaptive Gauss–Hermite vs Williams' closed forms, layers 1–3: |error| ≤ 1e-8 (seen ~1e-14).

    Off the sphere (row norms in [0.5, 1.5]) the diagonal varies and every pair is integrated."""
    x = sphere_points(12, 5, 3)
    if not on_sphere:
        x = x * torch.linspace(0.5, 1.5, 12, dtype=DT)[:, None]
    inp = x @ x.T
    for _ in range(3):
        lam = variance * inp
        s_cf, d_cf = lm.gaussian_pair_expectations("erf", lam)
        s_q, d_q = lm.gaussian_pair_expectations("erf", lam, method=method, closed_form=False)
        assert (s_q - s_cf).abs().max() <= 1e-8
        assert (d_q - d_cf).abs().max() <= 1e-8
        inp = s_cf


def test_relu_quadrature_converges_to_arccos():
    """ReLU's kink limits Gauss–Hermite to O(1/q): at q = 1024, |ΔΣ| ≤ 3e-4 and |ΔΣ̇| ≤ 1.5e-2
    (measured 1.3e-4, 8.4e-3), and quadrupling q from 256 shrinks both errors by ≥ 1.8×."""
    x = sphere_points(6, 5, 4)
    lam = x @ x.T
    s_cf, d_cf = lm.gaussian_pair_expectations("relu", lam)
    errs = []
    for q in (256, 1024):
        s_q, d_q = lm.gaussian_pair_expectations(
            "relu", lam, order=q, method="direct", closed_form=False
        )
        errs.append(((s_q - s_cf).abs().max().item(), (d_q - d_cf).abs().max().item()))
    assert errs[1][0] <= 3e-4 and errs[1][1] <= 1.5e-2
    assert errs[0][0] >= 1.8 * errs[1][0] and errs[0][1] >= 1.8 * errs[1][1]


def test_chebyshev_path_matches_direct_and_handles_duplicates():
    """Both quadrature paths agree to 1e-12 for tanh, with a duplicated point (ρ = 1, no NaN)."""
    x = sphere_points(7, 5, 5)
    x = torch.cat([x, x[:1]])
    lam = 1.7 * x @ x.T
    a = lm.gaussian_pair_expectations("tanh", lam, method="chebyshev", order=200)
    b = lm.gaussian_pair_expectations("tanh", lam, method="direct", order=200)
    for u, v in zip(a, b):
        assert torch.isfinite(u).all()
        assert (u - v).abs().max() <= 1e-12
        assert torch.allclose(u[0], u[-1], rtol=0, atol=1e-14)


# ------------------------------------------------------------------------------------------
# Monte Carlo at m = 2^14
# ------------------------------------------------------------------------------------------


def _assert_mc(k_list, mean, se, nsig=4.0):
    k = torch.stack(k_list)
    assert k.shape == mean.shape
    # the test can fail: 4 SE is a small fraction of the kernel
    assert (nsig * se).max() <= 0.05 * k.abs().max()
    dev = (mean - k).abs()
    assert (dev <= nsig * se + 1e-12).all(), f"max |dev|/se = {(dev / se).max():.2f}"


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("act", ACTS)
def test_kernels_match_monte_carlo(act, depth):
    """K[l] vs the mean normalized Gram over 48 draws at m = 2^14: within 4 SE elementwise."""
    x = sphere_points(6, 5, 6)
    mean, se = mc_mean_se(x, activations.get(act), depth, 2**14, 48, seed=100 + depth)
    _assert_mc(lm.limiting(x, act, depth), mean, se)


def test_bias_limit_matches_monte_carlo():
    """Bias as in model.py (appended 1 with scaled weight): only the input keeps +1 (4 SE);
    the every-layer convention differs from it by far more than the MC error."""
    x = sphere_points(6, 5, 7)
    mean, se = mc_mean_se(x, activations.get("tanh"), 2, 2**14, 48, seed=7, bias=True)
    k = lm.limiting(x, "tanh", 2, bias=True)
    _assert_mc(k, mean, se)
    k_every = torch.stack(lm.limiting(x, "tanh", 2, bias="every_layer"))
    assert ((k_every - mean).abs() > 10 * se).any()


def test_variance_factors_match_monte_carlo():
    """Pre-activation variance factors (v1, v2) = (2, 0.5), nominal κ normalization (4 SE)."""
    x = sphere_points(6, 5, 8)
    mean, se = mc_mean_se(
        x, activations.get("tanh"), 2, 2**14, 48, seed=8, s=(math.sqrt(2), math.sqrt(0.5))
    )
    _assert_mc(lm.limiting(x, "tanh", 2, input_variance=[2.0, 0.5]), mean, se)


def test_xavier_linearized_matches_monte_carlo():
    """Xavier (β1² = 2/(d+m)) with tanh: every layer linearized, K[l] = XXᵀ (4 SE)."""
    m, d = 2**14, 5
    x = sphere_points(6, d, 9)
    v, regimes = lm.scheme_setup("xavier", "tanh", 2, m, d)
    assert regimes == ["linearized", "linearized"]
    mean, se = mc_mean_se(x, activations.get("tanh"), 2, m, 48, seed=9, s=(math.sqrt(v[0]), 1.0))
    k = lm.limiting(x, "tanh", 2, input_variance=v, regime=regimes)
    for kl in k:
        assert torch.allclose(kl, x @ x.T, rtol=0, atol=1e-14)
    _assert_mc(k, mean, se)


# ------------------------------------------------------------------------------------------
# structure
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ACTS)
def test_symmetric_and_positive_definite(act):
    """Exact symmetry; λ_min > 1e-9 · λ_max for 20 distinct sphere points (d = 5), L = 1..3.

    The bound sits far above the quadrature error (≲ 1e-12 relative); the smallest ratios seen
    are 6e-8 (sigmoid, L = 3: the constant σ(0) = ½ dominates) and ≥ 1e-3 for tanh/erf/relu/gelu.
    """
    x = sphere_points(20, 5, 10)
    for depth in (1, 2, 3):
        k_list = lm.limiting(x, act, depth)
        assert len(k_list) == depth + 1
        for k in k_list:
            assert k.dtype == DT and k.shape == (20, 20)
            assert torch.equal(k, k.T)
            ev = torch.linalg.eigvalsh(k)
            assert ev[0] > 1e-9 * ev[-1]
        assert lm.lambda_s(k_list) == pytest.approx(
            min(torch.linalg.eigvalsh(k)[0].item() for k in k_list), rel=1e-12
        )


def test_closed_form_diagonals():
    """ReLU: Σ[l](x,x) = 2^{-l}, so every K[l] has diagonal 2^{-L}; erf: Σ[1](x,x) = (2/π)asin(2/3)."""
    x = sphere_points(9, 5, 11)
    for depth in (1, 2, 4):
        for k in lm.limiting(x, "relu", depth):
            assert torch.allclose(
                torch.diagonal(k), torch.full((9,), 2.0**-depth, dtype=DT), atol=1e-15
            )
    k = lm.limiting(x, "erf", 1)
    expected = 2 / math.pi * math.asin(2 / 3)
    assert torch.allclose(torch.diagonal(k[1]), torch.full((9,), expected, dtype=DT), atol=1e-15)
    # and through quadrature (tanh ↔ erf checks use the same path)
    k_q = lm.gaussian_pair_expectations("erf", x @ x.T, closed_form=False)[0]
    assert torch.allclose(torch.diagonal(k_q), torch.full((9,), expected, dtype=DT), atol=1e-12)


def test_lambda_s_and_decay_rate():
    """λ_S is the smallest eigenvalue over layers; the decay rate is 2 λ_min(Θ0)/n (exact)."""
    a = torch.diag(torch.tensor([3.0, 2.0, 5.0], dtype=DT))
    b = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 4.0]], dtype=DT)
    assert lm.lambda_s([a, b]) == pytest.approx(1.0, abs=1e-14)
    lam_min = (9 - math.sqrt(5)) / 2  # eigenvalues of a + b: 9, (9 ± √5)/2
    lam = float(torch.linalg.eigvalsh(a + b)[0])
    assert lam == pytest.approx(lam_min, abs=1e-14)
    assert linearized_rate(lam, 3) == pytest.approx(2 * lam_min / 3, abs=1e-14)


# ------------------------------------------------------------------------------------------
# regimes
# ------------------------------------------------------------------------------------------


def test_limit_regime_table():
    assert lm.limit_regime("tanh", 0.0) == "normal"
    assert lm.limit_regime("relu", 1.0) == "normal"  # homogeneous: exact at every scale
    assert lm.limit_regime("relu", -1.0) == "normal"
    assert lm.limit_regime("tanh", -1.0) == "linearized"
    assert lm.limit_regime("sigmoid", -0.5) == "linearized"
    assert lm.limit_regime("tanh", 0.5) == "step"
    assert lm.limit_regime("sigmoid", 0.5) == "step"
    assert lm.limit_regime("softplus", 0.5) == "none"
    assert lm.limit_regime("gelu", 0.5) == "none"


def test_scheme_setup():
    v, r = lm.scheme_setup("uniform:0.25", "tanh", 2, 256, 5)
    assert r == ["linearized", "normal"]
    assert v == pytest.approx([256**-0.5, 256**0.5], rel=1e-14)
    v, r = lm.scheme_setup("lecun", "relu", 3, 256, 5)
    assert r == ["normal"] * 3 and v == pytest.approx([1.0, 1.0, 1.0], rel=1e-14)
    assert lm.scheme_setup("uniform:-0.25", "tanh", 1, 256, 5)[1] == ["step"]
    with pytest.raises(ValueError, match="softplus"):
        lm.scheme_setup("uniform:-0.25", "softplus", 1, 256, 5)
    with pytest.raises(ValueError, match="gelu"):
        lm.limiting(sphere_points(3, 2, 0), "gelu", 1, regime="none")
    with pytest.raises(ValueError, match="relu"):
        lm.limiting(sphere_points(3, 2, 0), "relu", 1, regime="step")


def test_linearized_is_small_variance_limit():
    """Normal-regime kernels at v = 1e-9 (erf, closed form) and v = 1e-6 (tanh, quadrature)
    equal the linearized ones to relative 1e-6 and 1e-5 (corrections are O(v))."""
    x = sphere_points(8, 5, 12)
    for act, v, tol in (("erf", 1e-9, 1e-6), ("tanh", 1e-6, 1e-5)):
        small = lm.limiting(x, act, 2, input_variance=v)
        lin = lm.limiting(x, act, 2, regime="linearized")
        for a, b in zip(small, lin):
            assert (a - b).abs().max() <= tol * b.abs().max()
    slope = 2 / math.sqrt(math.pi)
    lin = lm.limiting(x, "erf", 2, regime="linearized")
    assert torch.allclose(lin[0], slope**4 * x @ x.T, rtol=1e-14, atol=1e-15)


def test_step_is_large_variance_limit():
    """erf at v = 1e8 (closed form): v·K[2] → step kernel (2/π)asin ρ (1e-3) and
    √v·Σ̇ → δ ‖σ'‖²/√(2π) = (2/π) δ on unit inputs (diagonal 1e-6, off-diagonal 1e-3)."""
    x = sphere_points(8, 5, 13)
    v = 1e8
    big = lm.limiting(x, "erf", 1, input_variance=v)
    step = lm.limiting(x, "erf", 1, regime="step")
    rho = (x @ x.T).clamp(-1, 1)
    assert torch.allclose(step[1], 2 / math.pi * torch.asin(rho), atol=1e-14)
    assert (v * big[1] - step[1]).abs().max() <= 1e-3
    assert torch.allclose(
        torch.diagonal(step[0]), torch.full((8,), 2 / math.pi, dtype=DT), rtol=1e-9
    )
    off = ~torch.eye(8, dtype=torch.bool)
    assert (step[0][off] == 0).all()
    scaled = math.sqrt(v) * big[0]
    assert torch.allclose(torch.diagonal(scaled), torch.diagonal(step[0]), rtol=1e-6)
    assert scaled[off].abs().max() <= 1e-3
    # sigmoid: levels (0, 1) give the arc-cosine kernel of degree 0, ‖σ'‖² = 1/6
    sig = lm.limiting(x, "sigmoid", 1, regime="step")
    assert torch.allclose(sig[1], (math.pi - torch.acos(rho)) / (2 * math.pi), atol=1e-14)
    assert torch.allclose(
        torch.diagonal(sig[0]),
        torch.full((8,), 1 / 6 / math.sqrt(2 * math.pi), dtype=DT),
        rtol=1e-9,
    )
