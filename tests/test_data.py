"""Data on the sphere, targets and the seed derivation."""

from __future__ import annotations

import subprocess
import sys

import torch

from lazyphase.cells import validate_cell
from lazyphase.core.data import derive_seed, generator, make_dataset, make_teacher, sphere


def test_seed_is_a_pinned_stable_hash():
    """The seed of a parameter dict is fixed forever (a change would silently re-draw every
    published grid); key order does not matter."""
    assert derive_seed({"a": 1, "b": [1, 2], "c": 0.5}, "init") == 6094057847417446640
    assert derive_seed({"c": 0.5, "b": [1, 2], "a": 1}, "init") == 6094057847417446640
    assert derive_seed({"a": 1, "b": [1, 2], "c": 0.5}, "data") != 6094057847417446640


def test_seed_derivation_resumes_exactly_in_a_fresh_process():
    """Re-deriving in another interpreter (another job, another order) gives the same bits."""
    cell = validate_cell(dict(m=8, d=5, n=7, seeds=[0, 1]))
    here = make_dataset(cell, 1).x_train
    code = (
        "from lazyphase.cells import validate_cell; from lazyphase.core.data import make_dataset;"
        "import torch; c = validate_cell(dict(m=8, d=5, n=7, seeds=[0, 1]));"
        "make_dataset(c, 0); print(make_dataset(c, 1).x_train.double().numpy().tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here.numpy().tobytes().hex()


def test_sphere_points_have_unit_norm_and_zero_mean():
    x = sphere(20000, 6, generator(0))
    assert torch.allclose(x.norm(dim=1), torch.ones(20000, dtype=torch.float64), atol=1e-14)
    # uniform on the sphere: E x = 0, E x xᵀ = I/d (4 standard errors)
    assert x.mean(0).abs().max() < 4 * (1 / 6) ** 0.5 / 20000**0.5
    cov = x.T @ x / 20000
    assert (cov - torch.eye(6, dtype=torch.float64) / 6).abs().max() < 0.01


def test_teacher_has_unit_directions_and_sign_outputs():
    t = make_teacher(7, 5, 2.0, generator(3))
    assert torch.allclose(t.directions.norm(dim=1), torch.ones(5, dtype=torch.float64))
    assert set(t.signs.tolist()) <= {-1.0, 1.0}
    x = sphere(9, 7, generator(4))
    ref = 2.0 * sum(t.signs[j] * torch.relu(x @ t.directions[j]) for j in range(5))
    assert torch.allclose(t(x), ref, rtol=1e-14)


def test_data_shared_across_widths_and_replicas_unless_resampled():
    a = make_dataset(validate_cell(dict(m=8, seeds=[0, 1])), 0)
    b = make_dataset(validate_cell(dict(m=64, s=1.0, seeds=[0, 1])), 1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    c = validate_cell(dict(m=8, seeds=[0, 1], resample_data=True))
    assert not torch.equal(make_dataset(c, 0).x_train, make_dataset(c, 1).x_train)


def test_kernel_set_is_training_set_when_small_else_fresh():
    small = make_dataset(validate_cell(dict(m=4, n=10)), 0)
    assert small.x_kernel is small.x_train
    big = make_dataset(validate_cell(dict(m=4, n=300)), 0)
    assert big.x_kernel.shape == (256, 8)
    assert not torch.equal(big.x_kernel, big.x_train[:256])


def test_label_noise_has_the_requested_std():
    clean = make_dataset(validate_cell(dict(m=4, n=4000)), 0)
    noisy = make_dataset(validate_cell(dict(m=4, n=4000, label_noise=0.3)), 0)
    resid = noisy.y_train - clean.y_train
    assert abs(float(resid.std()) - 0.3) < 4 * 0.3 / (2 * 4000) ** 0.5
