"""Step-size policies: the initial step of a replica and the batch's stop settings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lazyphase.core.model import Scales


def initial_lr(cell: Mapping[str, Any], scales: Scales, lam_max: float) -> float:
    """Step size of a replica from its cell's policy (``lam_max``: λ_max of Θ0 / n, of the
    dynamics' kernel ``Σ_l r_l Θ[l] / n`` with per-layer steps, docs/conventions.md §7).

    ``critical``: ``η = lr_c · η_crit`` with ``η_crit = 2 / λ_max``, the step above which the
    linearized run of the loss ``R = (1/2n) Σ (f − y)²`` diverges (docs/conventions.md §3);
    ``ntk`` is the same with ``η = lr_c / λ_max`` (``η/η_crit = lr_c/2``)."""
    policy = cell["lr_policy"]
    if policy == "ntk":
        return cell["lr_c"] / lam_max
    if policy == "critical":
        return cell["lr_c"] * critical_lr(lam_max)
    if policy == "luo":
        return cell["lr"] * math.sqrt(scales.betas[0] * scales.betas[-1]) / scales.alpha
    return step_rule(cell, scales) / objective_divisor(cell, scales)


def critical_lr(lam_max: float) -> float:
    """``η_crit = 2 / λ_max(Θ0/n)``: on ``R = (1/2n) Σ_i e_i²`` a step of the linearized model is
    ``e ← (I − η Θ0/n) e``, which contracts every mode iff ``η λ_max(Θ0/n) < 2``."""
    return 2.0 / lam_max


def step_rule(cell: Mapping[str, Any], scales: Scales) -> float:
    """The step ``η`` of the chizat, chizat_alpha, width and fixed policies, before the division
    of :func:`objective_divisor` (``A = 1/scales.alpha`` is Chizat's output multiplier)."""
    policy, tau = cell["lr_policy"], cell["tau"]
    if policy == "chizat":
        return min(cell["lr_max"], cell["lr_c"] / tau**2)
    if policy == "chizat_alpha":
        return min(cell["lr_max"], cell["lr_c"] / (tau / scales.alpha) ** 2)
    if policy == "width":
        return cell["lr_c"] / cell["m"]
    if policy == "fixed":
        return cell["lr"]
    raise ValueError(
        f"unknown lr_policy {policy!r}; allowed: ntk, critical, chizat, chizat_alpha, width, "
        "fixed, luo"
    )


def objective_divisor(cell: Mapping[str, Any], scales: Scales) -> float:
    """The step on ``R`` is ``η / objective_divisor``: the steps are taken on ``F = R/c²`` with
    ``c = objective_scale`` (model conventions), ``c = A`` (model chizat, ``step_on: F_alpha``,
    Chizat's ``F_A = R(A h)/A²``) or ``c = 1`` (model chizat, ``step_on: R``). ``mean_field``
    divides by ``A``; ``note_c6`` by ``A³``: the Note's C6 loop runs ``SGD(lr = η/A)`` on ``F_A``."""
    if cell.get("model", "conventions") != "chizat":
        return float(cell["objective_scale"]) ** 2
    a = 1.0 / scales.alpha
    return {"F_alpha": a**2, "R": 1.0, "mean_field": a, "note_c6": a**3}[cell["step_on"]]


def stop_settings(cells: Sequence[Mapping[str, Any]], scales: Sequence[Scales]) -> dict[str, Any]:
    """The batch's stop settings (those of its first cell) with ``delta`` in units of ``R``.

    ``delta_on: F_alpha`` gives ``δ`` on ``F_A = R/A²`` (the Note's C6 loop), i.e. ``δ·A²`` on
    ``R``; the trainer's δ is one number per batch, so every replica must share ``A``.
    """
    settings = dict(cells[0])
    if settings.get("delta_on", "R") == "F_alpha":
        mults = {1.0 / sc.alpha for sc in scales}
        if len(mults) > 1:
            raise ValueError(
                "delta_on: F_alpha needs one output multiplier A per batch; got "
                f"{sorted(mults)} (batch over tau only, not chizat_alpha)"
            )
        settings["delta"] = float(settings["delta"]) * mults.pop() ** 2
    return settings
