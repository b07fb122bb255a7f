"""Activation registry: each entry is a function, its derivative and what the kernels need to know.

The registry is user-extensible through :func:`register`. Every function maps a tensor of any
shape to a tensor of the same shape (elementwise) and works in float32 and float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

Elementwise = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Activation:
    """An elementwise activation ``σ`` with its derivative ``σ'``.

    Attributes:
        name: registry key.
        fn: ``σ``, elementwise.
        deriv: ``σ'``, elementwise.
        homogeneous: ``True`` when ``σ(λz) = λσ(z)`` for ``λ > 0`` (then ``f_θ = κ f̄_θ̄`` exactly).
        limits: ``(σ(−∞), σ(+∞))``, ``None`` when unbounded on that side.
        slope0: ``σ'(0)``, the slope of the linearized activation.
        deriv_from_output: ``σ'`` as a function of ``h = σ(z)`` when that is cheaper than
            recomputing from ``z`` (tanh: ``1 − h²``, relu: the mask ``h > 0``), else ``None``;
            the backward pass uses it and saves one transcendental pass per layer and step.
    """

    name: str
    fn: Elementwise
    deriv: Elementwise
    homogeneous: bool = False
    limits: tuple[float | None, float | None] = (None, None)
    slope0: float = 1.0
    deriv_from_output: Elementwise | None = None


def _autograd_deriv(fn: Elementwise) -> Elementwise:
    def deriv(z: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(fn(zz).sum(), zz)
        return g

    return deriv


_SQRT_2PI = math.sqrt(2.0 * math.pi)


def _gelu_deriv(z: torch.Tensor) -> torch.Tensor:
    cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    return cdf + z * torch.exp(-0.5 * z * z) / _SQRT_2PI


def _sigmoid_deriv(z: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(z)
    return s * (1.0 - s)


_REGISTRY: dict[str, Activation] = {
    "relu": Activation(
        "relu",
        torch.relu,
        lambda z: (z > 0).to(z.dtype),
        homogeneous=True,
        limits=(0.0, None),
        slope0=0.5,
        deriv_from_output=lambda h: h > 0,  # a mask: multiplying by it promotes to h's dtype
    ),
    "linear": Activation("linear", lambda z: z, torch.ones_like, homogeneous=True),
    "tanh": Activation(
        "tanh",
        torch.tanh,
        lambda z: 1.0 - torch.tanh(z) ** 2,
        limits=(-1.0, 1.0),
        deriv_from_output=lambda h: 1.0 - h * h,
    ),
    "erf": Activation(
        "erf",
        torch.erf,
        lambda z: (2.0 / math.sqrt(math.pi)) * torch.exp(-z * z),
        limits=(-1.0, 1.0),
        slope0=2.0 / math.sqrt(math.pi),
    ),
    "sigmoid": Activation("sigmoid", torch.sigmoid, _sigmoid_deriv, limits=(0.0, 1.0), slope0=0.25),
    "softplus": Activation(
        "softplus",
        torch.nn.functional.softplus,
        torch.sigmoid,
        limits=(0.0, None),
        slope0=0.5,
    ),
    "gelu": Activation(
        "gelu", torch.nn.functional.gelu, _gelu_deriv, limits=(0.0, None), slope0=0.5
    ),
}


def register(
    name: str,
    fn: Elementwise,
    deriv: Elementwise | None = None,
    *,
    homogeneous: bool = False,
    limits: tuple[float | None, float | None] = (None, None),
    slope0: float | None = None,
) -> Activation:
    """Add an activation to the registry (the derivative defaults to autograd of ``fn``)."""
    d = deriv if deriv is not None else _autograd_deriv(fn)
    if slope0 is None:
        slope0 = float(d(torch.zeros(1, dtype=torch.float64))[0])
    act = Activation(name, fn, d, homogeneous, limits, slope0)
    _REGISTRY[name] = act
    return act


def get(name: str) -> Activation:
    """Look up an activation by name; the error lists the registered names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown activation {name!r}; registered: {', '.join(sorted(_REGISTRY))}"
        ) from None


def names() -> list[str]:
    """The registered activation names, sorted."""
    return sorted(_REGISTRY)
