"""The effective number of directions n_eff = 1/tr(C²) of a layer's rows (core.directions):
exact values for repeated orthogonal and non-orthogonal directions, invariances, and the
closed form E tr(C²) = 1/d + (1/m)(1 − 1/d) for random rows (docs/conventions.md §6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lazyphase.core.directions import (
    direction_second_moment,
    effective_directions,
    expected_random_second_moment,
)


def _orthonormal(rng, d, k):
    q, _ = np.linalg.qr(rng.standard_normal((d, k)))
    return q.T  # (k, d) orthonormal rows


def _repeat(rng, dirs, counts):
    """Rows ``± c · dirs[j]`` (random signs and scales), ``counts[j]`` of each, shuffled."""
    rows = np.concatenate([np.repeat(dirs[j : j + 1], c, axis=0) for j, c in enumerate(counts)])
    scale = rng.choice([-1.0, 1.0], size=(len(rows), 1)) * rng.uniform(1e-3, 1e3, (len(rows), 1))
    return rng.permutation(rows * scale)


@pytest.mark.parametrize(("d", "k", "reps"), [(7, 3, 5), (4, 4, 1), (12, 1, 9), (3, 2, 50)])
def test_equally_repeated_orthogonal_directions_give_exactly_k(d, k, reps):
    rng = np.random.default_rng(d * 100 + k)
    w = _repeat(rng, _orthonormal(rng, d, k), [reps] * k)
    assert effective_directions(w) == pytest.approx(k, rel=1e-12)


def test_unequal_counts_give_the_inverse_simpson_index():
    rng = np.random.default_rng(1)
    counts = [1, 2, 7]
    w = _repeat(rng, _orthonormal(rng, 5, 3), counts)
    p = np.asarray(counts) / sum(counts)
    assert effective_directions(w) == pytest.approx(1 / np.sum(p * p), rel=1e-12)
    assert effective_directions(w) < 3


@pytest.mark.parametrize("angle", [0.0, 0.3, np.pi / 4, 1.2, np.pi / 2])
def test_two_directions_at_an_angle(angle):
    rng = np.random.default_rng(2)
    dirs = np.array([[1.0, 0.0, 0.0], [np.cos(angle), np.sin(angle), 0.0]])
    w = _repeat(rng, dirs, [4, 4])
    assert effective_directions(w) == pytest.approx(2 / (1 + np.cos(angle) ** 2), rel=1e-12)


def test_invariances_batching_and_torch_input():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 10, 6))
    ref = effective_directions(w)
    assert ref.shape == (3,)
    signs = rng.choice([-1.0, 1.0], size=(3, 10, 1))
    np.testing.assert_allclose(effective_directions(w * signs * 17.0), ref, rtol=1e-12)
    np.testing.assert_allclose(effective_directions(np.concatenate([w, w], 1)), ref, rtol=1e-12)
    np.testing.assert_allclose(effective_directions(torch.as_tensor(w)), ref, rtol=1e-14)
    # both evaluation paths (d×d and m×m) against the cosine-sum definition
    for ww in (w[0], w[0].T):
        u = ww / np.linalg.norm(ww, axis=1, keepdims=True)
        direct = np.sum((u @ u.T) ** 2) / len(u) ** 2
        assert direction_second_moment(ww) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize(("m", "d"), [(40, 8), (6, 30), (25, 25)])
def test_random_rows_match_the_closed_form_mean(m, d):
    """Mean of tr(C²) over 2000 Gaussian matrices within 4 standard errors of the closed form;
    n_eff of one draw near m d/(m + d − 1)."""
    rng = np.random.default_rng(m * d)
    t = direction_second_moment(rng.standard_normal((2000, m, d)))
    expected = expected_random_second_moment(m, d)
    assert expected == pytest.approx(1 / d + (1 - 1 / d) / m, rel=1e-15)
    se = t.std(ddof=1) / np.sqrt(len(t))
    assert abs(t.mean() - expected) < 4 * se, (t.mean(), expected, se)
    assert se < 0.01 * expected  # the check has power: the SE is below 1 % of the mean
    # n_eff ≈ m d/(m + d − 1); about min(m, d) up to the finite-sample correction
    assert np.median(1 / t) == pytest.approx(m * d / (m + d - 1), rel=0.1)


def test_zero_row_is_named():
    w = np.ones((2, 4, 3))
    w[1, 2] = 0.0
    with pytest.raises(ValueError, match=r"zero row at index \(1, 2\)"):
        effective_directions(w)
    with pytest.raises(ValueError, match="shape"):
        effective_directions(np.ones(3))
