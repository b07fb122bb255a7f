"""Data on the sphere, targets and seed derivation.

Every random draw takes an explicit ``torch.Generator`` seeded by :func:`derive_seed`, a stable
hash of the parameters that define the draw, so a result never depends on job order, on other
cells or on global RNG state. Draws are made on the CPU in float64 and only then cast and moved,
so they are identical on every device and dtype.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch


def derive_seed(params: Mapping[str, Any], purpose: str) -> int:
    """A 63-bit seed from a canonical JSON encoding of ``params`` and ``purpose`` (SHA-256).

    The encoding sorts keys and writes floats with ``repr``, so it is the same on every
    machine, Python version and job order.
    """
    blob = json.dumps({"purpose": purpose, "params": params}, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big") >> 1


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    g = torch.Generator(device="cpu")
    g.manual_seed(seed)
    return g


def sphere(n: int, d: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` points uniform on ``S^{d-1}``: Gaussian rows normalized. Shape ``(n, d)``, float64."""
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


@dataclass(frozen=True)
class Teacher:
    """Two-layer ReLU teacher ``y(x) = scale · Σ_j sign_j relu(w_j·x)`` with unit-norm ``w_j``.

    Attributes:
        directions: ``(m0, d)`` unit rows.
        signs: ``(m0,)`` entries ``±1``.
        scale: output factor.
    """

    directions: torch.Tensor
    signs: torch.Tensor
    scale: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Targets for ``x`` of shape ``(n, d)``; returns ``(n,)``."""
        return self.scale * torch.relu(x @ self.directions.T) @ self.signs


def make_teacher(d: int, m0: int, scale: float, gen: torch.Generator) -> Teacher:
    """Draw a teacher: directions uniform on the sphere, signs ``±1`` with equal probability."""
    directions = sphere(m0, d, gen)
    signs = torch.where(torch.rand(m0, generator=gen, dtype=torch.float64) < 0.5, -1.0, 1.0)
    return Teacher(directions, signs.to(torch.float64), float(scale))


def make_linear(d: int, scale: float, gen: torch.Generator) -> Teacher:
    """A linear target ``scale · w·x`` with unit ``w`` (as a one-neuron 'teacher' without ReLU)."""
    w = sphere(1, d, gen)
    return _Linear(w, torch.ones(1, dtype=torch.float64), float(scale))


class _Linear(Teacher):
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * (x @ self.directions.T)[:, 0]


@dataclass(frozen=True)
class Dataset:
    """One data set (float64, CPU).

    Attributes:
        x_train: ``(n, d)``; y_train: ``(n,)``; x_test: ``(n_test, d)``; y_test: ``(n_test,)``;
        x_kernel: ``(n_k, d)``, the points on which the per-layer NTK is stored.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_kernel: torch.Tensor


def data_params(cell: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The parameters every data draw of replica ``seed`` depends on: ``d``, ``data_seed`` and,
    with ``resample_data``, the replica seed. Each draw adds only its own size or kind, so cells
    that differ in width, scale, noise level or teacher scale share their points (common random
    numbers across the grid)."""
    p = {"d": cell["d"], "data_seed": cell["data_seed"]}
    if cell.get("resample_data"):
        p["replica_seed"] = seed
    return p


#: Cell keys a data set depends on (with the replica seed when ``resample_data``).
DATA_KEYS = (
    "d",
    "data_seed",
    "n",
    "n_test",
    "n_kernel",
    "target",
    "m0",
    "teacher_scale",
    "label_noise",
)


def dataset_key(cell: Mapping[str, Any], seed: int) -> str:
    """A short stable name of the data set of ``cell`` for replica ``seed``."""
    p = {k: cell[k] for k in DATA_KEYS}
    if cell.get("resample_data"):
        p["replica_seed"] = seed
    blob = json.dumps(p, sort_keys=True, default=str)
    return "data-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def make_target(cell: Mapping[str, Any], seed: int) -> Teacher:
    """The target function of ``cell`` for replica ``seed`` (the one :func:`make_dataset` uses)."""
    params = data_params(cell, seed)
    gen = generator(derive_seed({**params, "target": cell["target"], "m0": cell["m0"]}, "target"))
    if cell["target"] == "teacher":
        return make_teacher(cell["d"], cell["m0"], cell["teacher_scale"], gen)
    return make_linear(cell["d"], cell["teacher_scale"], gen)


def make_dataset(cell: Mapping[str, Any], seed: int) -> Dataset:
    """Draw the data set of ``cell`` for replica ``seed`` (identical for all replicas unless
    ``resample_data``). Train, test and kernel points are independent samples; the kernel set is
    the training set when ``n_kernel`` is null and ``n ≤ 256``, else ``n_kernel or 256`` fresh points.
    """
    params = data_params(cell, seed)
    d, n = cell["d"], cell["n"]
    target = make_target(cell, seed)
    x_train = sphere(n, d, generator(derive_seed({**params, "n": n}, "x_train")))
    n_test = cell["n_test"]
    x_test = sphere(n_test, d, generator(derive_seed({**params, "n": n_test}, "x_test")))
    y_train = target(x_train)
    if cell["label_noise"] > 0:
        noise = torch.randn(
            n, generator=generator(derive_seed({**params, "n": n}, "noise")), dtype=torch.float64
        )
        y_train = y_train + cell["label_noise"] * noise
    n_k = cell["n_kernel"]
    if n_k is None and n <= 256:
        x_kernel = x_train
    else:
        n_k = n_k or 256
        x_kernel = sphere(n_k, d, generator(derive_seed({**params, "n": n_k}, "x_kernel")))
    return Dataset(x_train, y_train, x_test, target(x_test), x_kernel)
