"""Initialization schemes by name: the one parser of scheme strings (docs/conventions.md §2).

A scheme is a name (``lecun``, ``kaiming``, ``xavier``), a parametrized name (``uniform:γ``,
``luo:γ'``, ``deep:γ_h``) or an explicit mapping ``{c: [...], gamma: [...]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _param(scheme: Any, prefix: str) -> float | None:
    if isinstance(scheme, str) and scheme.startswith(prefix + ":"):
        return float(scheme[len(prefix) + 1 :])
    return None


def luo_gamma_prime(scheme: Any) -> float | None:
    """``γ'`` of a scheme in Luo et al.'s coordinates (``luo:γ'``), else None."""
    return _param(scheme, "luo")


def uniform_gamma(scheme: Any) -> float | None:
    """``γ`` of a ``uniform:γ`` scheme (every layer's variance ``∝ m^{-γ}``), else None."""
    return _param(scheme, "uniform")


def deep_gamma_h(scheme: Any) -> float | None:
    """``γ_h`` of a ``deep:γ_h`` scheme (hidden layers ``l = 2..L`` of std ``m^{-γ_h}``, first and
    output layer equal and solving ``κ = m^s``; docs/conventions.md §2), else None."""
    return _param(scheme, "deep")


def deep_scheme(gamma_h: float) -> str:
    """The scheme string of the deep phase-diagram coordinate ``γ_h``."""
    return f"deep:{float(gamma_h):g}"


def luo_scheme(gamma_prime: float) -> str:
    """The scheme string of Luo et al.'s coordinate ``γ'``."""
    return f"luo:{float(gamma_prime):g}"


def scheme_label(scheme: str | Mapping[str, Any]) -> str:
    """A printable, file-name-safe label of a scheme (explicit vectors as c=..;gamma=..)."""
    if isinstance(scheme, str):
        return scheme
    c = ",".join(f"{v:g}" for v in scheme["c"])
    g = ",".join(f"{v:g}" for v in scheme["gamma"])
    return f"c={c};gamma={g}"
