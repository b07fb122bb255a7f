"""abc-parameterizations (docs/conventions.md §7): presets SP, NTP, μP, MFP and the explicit form.

An abc-parameterization of the network of §2 writes layer ``l = 1 … L+1`` as

    W[l] = A_l m^{-a_l} w[l],     w[l]_ij ~ N(0, (B_l m^{-b_l})²),     lr of w[l]: η C_l m^{-c_l}

(``a``: output multiplier, ``b``: init, ``c``: learning-rate exponent; ``A, B, C``: constants).
Gradient descent on ``w[l]`` moves the effective weight ``W[l]`` by
``−η C_l A_l² m^{-(c_l + 2a_l)} ∇_{W[l]} R``, so the project's network with

    β_l = A_l B_l m^{-(a_l + b_l)},     η_l = η · r_l,     r_l = C_l A_l² m^{-(c_l + 2 a_l)}

has the same function trajectory ``f(x, t)`` for every ``m``. Hence the equivalence
``(a, b, c) ~ (a + θ, b − θ, c − 2θ)`` (any per-layer ``θ``): SP ≡ NTP with ``c`` shifted by
``(0, −1, …, −1)``, and the μP and MFP presets below are one class. Nothing here imports
the rest of the package (the model imports it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The named presets (docs/conventions.md §7).
PRESETS = ("sp", "ntp", "mup", "mfp")


@dataclass(frozen=True)
class ABC:
    """Per-layer exponents and constants of layers ``1 … L+1`` (each a tuple of ``L+1`` floats)."""

    a: tuple[float, ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    mult: tuple[float, ...]
    init: tuple[float, ...]
    lr: tuple[float, ...]

    def shifted(self, theta: Sequence[float]) -> ABC:
        """The equivalent parameterization ``(a + θ, b − θ, c − 2θ)`` (same constants)."""
        th = tuple(float(t) for t in theta)
        return ABC(
            tuple(x + t for x, t in zip(self.a, th)),
            tuple(x - t for x, t in zip(self.b, th)),
            tuple(x - 2 * t for x, t in zip(self.c, th)),
            self.mult, self.init, self.lr,
        )  # fmt: skip


def preset(name: str, depth: int) -> ABC:
    """The exponents of a named preset for ``depth = L`` hidden layers (inputs of unit norm, so
    the first layer's fan-in counts as O(1)).

    ==== ====================== ====================== ====================
    name a                      b                      c
    ==== ====================== ====================== ====================
    sp   (0, 0, …, 0)           (0, ½, …, ½)           (0, …, 0)
    ntp  (0, ½, …, ½)           (0, …, 0)              (0, …, 0)
    mup  (0, 0, …, 0, ½)        (0, ½, …, ½)           (−1, 0, …, 0)
    mfp  (0, ½, …, ½, 1)        (0, …, 0)              (−1, …, −1)
    ==== ====================== ====================== ====================
    """
    n, h = depth + 1, [0.5] * depth
    table = {
        "sp": ([0.0] * n, [0.0, *h], [0.0] * n),
        "ntp": ([0.0, *h], [0.0] * n, [0.0] * n),
        "mup": ([0.0] * depth + [0.5], [0.0, *h], [-1.0] + [0.0] * depth),
        "mfp": ([0.0, *h[:-1], 1.0], [0.0] * n, [-1.0] * n),
    }
    if name not in table:
        raise ValueError(f"unknown parameterization {name!r}; allowed: {', '.join(PRESETS)}")
    a, b, c = table[name]
    ones = (1.0,) * n
    return ABC(tuple(a), tuple(b), tuple(c), ones, ones, ones)


def resolve(spec: str | Mapping[str, Any], depth: int) -> ABC:
    """The :class:`ABC` of a cell's ``parameterization``: a preset name or the explicit mapping
    ``{a: [...], b: [...], c: [...], constants: {a: [...], b: [...], c: [...]}}`` (``L+1``
    entries each; the constants ``A, B, C`` default to 1)."""
    if isinstance(spec, str):
        return preset(spec, depth)
    consts = spec.get("constants") or {}
    n = depth + 1

    def vec(values: Sequence[float] | None, name: str) -> tuple[float, ...]:
        out = tuple(float(v) for v in (values if values is not None else [1.0] * n))
        if len(out) != n:
            raise ValueError(
                f"parameterization.{name} needs depth + 1 = {n} entries, got {len(out)}"
            )
        return out

    return ABC(
        vec(spec["a"], "a"), vec(spec["b"], "b"), vec(spec["c"], "c"),
        vec(consts.get("a"), "constants.a"), vec(consts.get("b"), "constants.b"),
        vec(consts.get("c"), "constants.c"),
    )  # fmt: skip


def effective_stds(p: ABC, m: int) -> tuple[float, ...]:
    """``β_l = A_l B_l m^{-(a_l + b_l)}``: the stds of the project's (effective) weights."""
    return tuple(A * B * float(m) ** -(a + b) for a, b, A, B in zip(p.a, p.b, p.mult, p.init))


def layer_rates(p: ABC, m: int) -> tuple[float, ...]:
    """``r_l = C_l A_l² m^{-(c_l + 2a_l)}``: the step of layer ``l`` is ``η r_l``."""
    return tuple(C * A * A * float(m) ** -(c + 2 * a) for a, c, A, C in zip(p.a, p.c, p.mult, p.lr))


def kappa_exponent(p: ABC) -> float:
    """``s = (L+1)/2 − Σ_l (a_l + b_l)``: ``log κ / log m`` of the parameterization (α = 1, the
    constants aside): ½ for SP and NTP, 0 for μP and MFP."""
    return len(p.a) / 2 - sum(p.a) - sum(p.b)


def label(spec: str | Mapping[str, Any] | None) -> str:
    """A printable, file-name-safe label (explicit forms as ``abc:a=..;b=..;c=..``)."""
    if spec is None or isinstance(spec, str):
        return str(spec)
    parts = [f"{k}=" + ",".join(f"{float(v):g}" for v in spec[k]) for k in ("a", "b", "c")]
    return "abc:" + ";".join(parts)


def is_uniform(rates: Sequence[float]) -> bool:
    """Whether every layer has the same step (the trainer then skips the per-layer scaling)."""
    return all(math.isclose(r, 1.0, rel_tol=0.0, abs_tol=0.0) for r in rates)
