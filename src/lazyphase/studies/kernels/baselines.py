"""Kernel baselines beside the network: the test loss of four predictors per replica
(docs/conventions.md §6), read from the run files.

* (a) ``network``: the trained network ``f(θ_T)`` (``trajectory/test_loss`` at the end);
* (b) ``theta0``: the converged ``Θ0`` kernel predictor ``f_lin(∞)`` (stored at train time,
  ``linearized/test_output_converged``);
* (c) ``after``: the *after kernel*, kernel regression with the final empirical NTK ``Θ_T``
  from ``f(θ0)`` (needs ``weights/init`` and ``weights/final``);
* (d) ``ntk_inf``: the infinite-width NTK predictor ``Σ_l w_l K[l]`` from 0, with the limiting
  kernels ``K[l]`` of :mod:`lazyphase.core.limiting` and the cell's layer weights
  ``w_l = κ²/(m β_l²)`` (:func:`lazyphase.core.predictors.layer_weights`).

Where a predictor does not exist the loss is NaN and ``note_<predictor>`` says why: (b) the
linearized run was skipped (population SGD, large ``n``) or the file predates it; (c) the
weights were not stored (``weights_cap``); (d) a layer's ``G[l]`` has no ``O(1)`` limit
(regime ``none``/``step``, a linearized layer with ``σ(0) ≠ 0``) or ``Θ∞`` is singular on the
training set. ``ntk_inf_is_limit_of_theta0`` says whether (d) is also the ``m → ∞`` limit of
(b): only when ``f(θ0)`` vanishes in the limit (symmetric or ``subtract_initial`` centering, or
``s < ½`` without centering, the Gaussian process ``f(θ0)`` being of scale ``m^{s−½}``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from lazyphase.core import activations
from lazyphase.core.limiting import limiting, scheme_setup
from lazyphase.core.model import deep_outer_gamma, forward, layer_masks, resolve_scales
from lazyphase.core.predictors import ntk_limit_prediction, ntk_prediction, split_kernels
from lazyphase.core.schemes import deep_gamma_h, luo_gamma_prime
from lazyphase.store.runs import Run, load_run
from lazyphase.store.tables import predictor_test_loss

#: The predictors of the table, in column order: (a) … (d).
PREDICTORS = ("network", "theta0", "after", "ntk_inf")


def baseline_table(paths: Sequence[str]) -> pd.DataFrame:
    """One row per replica of every run file: the cell, ``seed``, ``status``, and
    ``test_loss_<p>`` / ``note_<p>`` for every ``p`` of :data:`PREDICTORS`, plus
    ``ntk_inf_is_limit_of_theta0`` (module docstring)."""
    rows = []
    for path in paths:
        rows += run_rows(load_run(path, gram=False))
    return pd.DataFrame(rows)


def run_rows(run: Run) -> list[dict[str, Any]]:
    """The :func:`baseline_table` rows of one run file."""
    cell = run.cell
    key = {k: cell[k] for k in ("m", "depth", "d", "n", "s", "scheme", "activation", "centering")}
    ntk_inf = _ntk_inf_outputs(run)
    rows = []
    for r, seed in enumerate(run["replicas/seed"]):
        f_b, note_b = _theta0_output(run, r)
        f_c, note_c = _after_output(run, r)
        f_d, note_d = ntk_inf[r]
        rows.append({
            **key, "seed": int(seed), "replica": r, "status": run.attrs["status"][r],
            "test_loss_network": float(run["trajectory/test_loss"][r, -1]), "note_network": "",
            **_loss("theta0", run, r, f_b, note_b), **_loss("after", run, r, f_c, note_c),
            **_loss("ntk_inf", run, r, f_d, note_d),
            "ntk_inf_is_limit_of_theta0": ntk_inf_is_limit(cell),
        })  # fmt: skip
    return rows


def _loss(name: str, run: Run, r: int, f: np.ndarray | None, note: str) -> dict[str, Any]:
    loss = math.nan if f is None else predictor_test_loss(run, r, f)
    return {f"test_loss_{name}": loss, f"note_{name}": note}


def ntk_inf_is_limit(cell: Mapping[str, Any]) -> bool:
    """Whether (d) is the ``m → ∞`` limit of (b): ``f(θ0) → 0`` (module docstring)."""
    return cell["centering"] in ("symmetric", "subtract_initial") or float(cell["s"]) < 0.5


def _theta0_output(run: Run, r: int) -> tuple[np.ndarray | None, str]:
    conv = run.arrays.get("linearized/test_output_converged")
    if conv is None:
        return None, "run file written before linearized/test_output_converged was stored"
    if run.attrs.get("linearized_skipped"):
        return None, f"linearized run skipped: {run.attrs['linearized_skipped']}"
    return conv[r], ""


def replica_params(run: Run, r: int, stage: str) -> list[torch.Tensor] | None:
    """``[W1, …, WL, a]`` of replica ``r`` at ``stage`` (``init``/``final``) with a replica axis
    of 1, float64; None when the file has no stored weights."""
    names = [f"W{i}" for i in range(1, int(run.cell["depth"]) + 1)] + ["a"]
    if any(f"weights/{stage}/{nm}" not in run.arrays for nm in names):
        return None
    return [torch.as_tensor(run[f"weights/{stage}/{nm}"][r : r + 1]).double() for nm in names]


def _after_output(run: Run, r: int) -> tuple[np.ndarray | None, str]:
    """(c): kernel regression with ``Θ(θ_T)`` from ``f(θ0)``, targets of the raw output."""
    p0, pt = replica_params(run, r, "init"), replica_params(run, r, "final")
    if p0 is None or pt is None:
        return None, "weights not stored (the cell has more than weights_cap parameters)"
    cell = run.cell
    act = activations.get(cell["activation"])
    alpha = torch.tensor([resolve_scales(cell).alpha], dtype=torch.float64)
    x_tr = torch.as_tensor(run["data/x_train"][r : r + 1]).double()
    x_te = torch.as_tensor(run["data/x_test"][r : r + 1]).double()
    y = torch.as_tensor(run["data/y_train"][r : r + 1]).double()
    if cell["centering"] == "subtract_initial":
        y = y + forward(p0, x_tr, act, alpha, cell["bias"]).out
    masks = layer_masks(cell)
    out = ntk_prediction(pt, x_tr, y, x_te, act, alpha, cell["bias"], masks, start=p0)
    return out[0], ""


def asymptotic_scheme(cell: Mapping[str, Any]) -> str | dict[str, list[float]]:
    """The cell's scheme in a form :func:`lazyphase.core.limiting.scheme_setup` reads: named
    schemes as they are; ``luo:γ'`` and ``deep:γ_h``, which set the stds from ``s``, as the
    explicit ``{"c", "gamma"}`` of ``β_l = c_l m^{−γ_l}`` at the cell's ``s``
    (``c = √α`` on the outer layers)."""
    s, depth, root = float(cell["s"]), int(cell["depth"]), math.sqrt(float(cell["alpha"]))
    if (gp := luo_gamma_prime(cell["scheme"])) is not None:
        g1 = (1.0 - s - gp) / 2.0
        return {"c": [root, root], "gamma": [g1, g1 + gp]}
    if (gh := deep_gamma_h(cell["scheme"])) is not None:
        go = deep_outer_gamma(depth, s, gh)
        return {"c": [root, *[1.0] * (depth - 1), root], "gamma": [go, *[gh] * (depth - 1), go]}
    return cell["scheme"]


def limit_kernel_regimes(cell: Mapping[str, Any]) -> tuple[list[float] | None, list[str], str]:
    """``(v, regimes, why)`` for :func:`limiting`: ``v = None`` and ``why`` the reason where
    the normalized Grams have no exact ``O(1)`` limit (the cases A4 refuses)."""
    try:
        v, regimes = scheme_setup(
            asymptotic_scheme(cell), cell["activation"], cell["depth"], cell["m"], cell["d"]
        )
    except ValueError as err:
        return None, [], f"no O(1) limit of G[l]: {err}"
    act = activations.get(cell["activation"])
    sig0 = float(act.fn(torch.zeros(1, dtype=torch.float64))[0])
    for layer, reg in enumerate(regimes, start=1):
        if reg == "step" or (reg == "linearized" and abs(sig0) > 1e-14):
            return None, regimes, f"layer {layer} in regime {reg!r}: G[l] has no O(1) limit"
    return v, regimes, ""


def _ntk_inf_outputs(run: Run) -> list[tuple[np.ndarray | None, str]]:
    """(d) for every replica: ``Σ_l w_l K[l]`` on ``[X; x_test]``, kernel regression from 0."""
    cell = run.cell
    n_rep = len(run["replicas/seed"])
    v, regimes, why = limit_kernel_regimes(cell)
    if v is None:
        return [(None, why)] * n_rep
    weights = 1.0 / np.asarray(run.attrs["gram_normalization"], dtype=np.float64)
    out = []
    for r in range(n_rep):
        x = np.concatenate([run["data/x_train"][r], run["data/x_test"][r]])
        kernels = limiting(x, cell["activation"], cell["depth"], input_variance=v,
                           regime=regimes, bias=cell["bias"])  # fmt: skip
        k_tr, k_te = split_kernels(kernels, int(cell["n"]))
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            try:
                f = ntk_limit_prediction(k_tr, k_te, weights, run["data/y_train"][r])
            except RuntimeWarning as w:
                out.append((None, str(w)))
                continue
        if cell["centering"] == "subtract_initial":  # (d) predicts f − f0c; raw output
            f = f + run["replicas/test_output0"][r]
        out.append((f, ""))
    return out
