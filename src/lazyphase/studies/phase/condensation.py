"""B3: condensation made visible (Luo, Xu, Ma & Zhang 2021, the neuron plots).

A two-layer network ``f = (1/α) Σ_k a_k σ(w_k·x)`` on ``d = 2`` inputs (the unit circle). Each
neuron is a point ``(φ_k, A_k)``: the orientation angle ``φ_k = atan2(w_k2, w_k1)`` and the
amplitude ``A_k = |a_k| ‖w_k‖`` (for ReLU the neuron's contribution is ``A_k`` times a fixed
function of ``x`` and ``φ_k``), at initialization and at the end of training, read from the run
files (``weights/init``, ``weights/final``). The concentration of the neurons on a few
orientations is measured by the *effective number of directions*

    n_eff = exp(H),   H = −Σ_b p_b log p_b,   p_b = Σ_{k: φ_k ∈ bin b} A_k / Σ_k A_k

over ``n_bins`` equal bins of the circle (amplitude-weighted orientation histogram; ``n_eff``
is between 1, every amplitude in one bin, and ``n_bins``); ``n_eff_count`` is the same without
the weights. The regime of a cell follows Luo et al.'s line for ``γ' = 0``: ``γ = 1 − s``
``< 1`` linear, ``= 1`` critical, ``> 1`` condensed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from lazyphase.core import activations
from lazyphase.core.data import make_target
from lazyphase.core.model import forward, resolve_scales
from lazyphase.core.schemes import luo_gamma_prime
from lazyphase.store.runs import load_run

#: Points on the circle where the learned function is evaluated.
N_CIRCLE = 361


def luo_regime(gamma: float, tol: float = 1e-9) -> str:
    """Luo et al.'s regime at ``γ' ≤ 0``: linear (``γ < 1``), critical (``γ = 1``), condensed."""
    if abs(gamma - 1.0) <= tol:
        return "critical"
    return "linear" if gamma < 1.0 else "condensed"


def neuron_tables(paths: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(neurons, circle)`` of two-layer ``d = 2`` run files with stored weights.

    * ``neurons``: ``s, gamma, gamma_prime, regime, seed, stage`` (``init``/``final``),
      ``neuron, angle`` (radians, ``[−π, π)``), ``amplitude`` (``|a_k| ‖w_k‖``), ``sign``
      (of ``a_k``);
    * ``circle``: ``s, gamma, regime, seed, angle, f_init, f_final, target`` on
      :data:`N_CIRCLE` points, and ``train`` (whether the row is a training point: those rows
      carry the training inputs' angles and targets).
    """
    neurons, circle = [], []
    for path in paths:
        run = load_run(path, gram=False)
        cell = run.cell
        if cell["depth"] != 1 or cell["d"] != 2 or cell["bias"]:
            raise ValueError(f"{path}: B3 needs depth 1, d = 2 and no bias; got {cell}")
        if "weights/final/W1" not in run.arrays:
            raise ValueError(f"{path}: no stored weights (raise weights_cap)")
        _run_tables(run, neurons, circle)
    return pd.concat(neurons, ignore_index=True), pd.concat(circle, ignore_index=True)


def _run_tables(run, neurons: list[pd.DataFrame], circle: list[pd.DataFrame]) -> None:
    """Append one run file's frames of :func:`neuron_tables` (one per replica and stage to
    ``neurons``, one per replica to ``circle``)."""
    cell = run.cell
    s = float(cell["s"])
    gamma = round(1.0 - s, 12)
    gp = luo_gamma_prime(cell["scheme"])
    key = dict(s=s, gamma=gamma, gamma_prime=np.nan if gp is None else gp, regime=luo_regime(gamma))
    alpha = torch.tensor([resolve_scales(cell).alpha], dtype=torch.float64)
    act = activations.get(cell["activation"])
    phi = np.linspace(-math.pi, math.pi, N_CIRCLE)
    xc = np.stack([np.cos(phi), np.sin(phi)], 1)
    x_train = run["data/x_train"][0]
    ytr = run["data/y_train"][0] if run["data/y_train"].ndim > 1 else run["data/y_train"]
    for r, seed in enumerate(run["replicas/seed"]):
        outs = {}
        for stage in ("init", "final"):
            w, a = run[f"weights/{stage}/W1"][r], run[f"weights/{stage}/a"][r]
            neurons.append(pd.DataFrame({**key, "seed": int(seed), "stage": stage,
                                         **_neuron_columns(w, a)}))  # fmt: skip
            params = [torch.as_tensor(w)[None], torch.as_tensor(a)[None]]
            outs[stage] = (
                forward(params, torch.as_tensor(xc)[None], act, alpha, False).out[0].numpy()
            )
        if cell["centering"] == "subtract_initial":
            outs = {"init": np.zeros_like(outs["init"]), "final": outs["final"] - outs["init"]}
        target = make_target(cell, int(seed))(torch.as_tensor(xc)).numpy()
        n_tr = len(x_train)
        circle.append(
            pd.DataFrame(
                {
                    **key,
                    "seed": int(seed),
                    "angle": np.concatenate([phi, np.arctan2(x_train[:, 1], x_train[:, 0])]),
                    "f_init": np.concatenate([outs["init"], np.full(n_tr, np.nan)]),
                    "f_final": np.concatenate([outs["final"], np.full(n_tr, np.nan)]),
                    "target": np.concatenate([target, np.asarray(ytr)]),
                    "train": np.r_[np.zeros(N_CIRCLE, bool), np.ones(n_tr, bool)],
                }
            )
        )


def _neuron_columns(w: np.ndarray, a: np.ndarray) -> dict[str, np.ndarray]:
    """Per neuron ``k`` of first-layer weights ``w: (m, 2)`` and output weights ``a: (m,)``:
    ``neuron, angle`` (of ``w_k``), ``amplitude`` (``|a_k| ‖w_k‖``) and ``sign`` (of ``a_k``)."""
    return {
        "neuron": np.arange(len(a)),
        "angle": np.arctan2(w[:, 1], w[:, 0]),
        "amplitude": np.abs(a) * np.linalg.norm(w, axis=1),
        "sign": np.sign(a),
    }


def effective_directions(angle: np.ndarray, weight: np.ndarray | None, n_bins: int) -> float:
    """``exp`` of the entropy of the (weighted) histogram of ``angle`` over ``n_bins`` equal bins
    of ``[−π, π)``: 1 when everything is in one bin, ``n_bins`` when it is uniform."""
    w = np.ones_like(angle) if weight is None else np.asarray(weight, dtype=float)
    hist, _ = np.histogram(np.mod(angle + math.pi, 2 * math.pi) - math.pi, bins=n_bins,
                           range=(-math.pi, math.pi), weights=w)  # fmt: skip
    if hist.sum() <= 0:
        return math.nan
    p = hist[hist > 0] / hist.sum()
    return float(math.exp(-(p * np.log(p)).sum()))


def condensation_summary(neurons: pd.DataFrame, *, n_bins: int = 72) -> pd.DataFrame:
    """Per ``(s, seed, stage)``: ``n_eff`` (amplitude-weighted), ``n_eff_count`` (unweighted),
    ``top2_mass`` (the share of the total amplitude in the two heaviest bins), ``n_bins``,
    ``amplitude_mean``."""
    rows = []
    keys = ["s", "gamma", "gamma_prime", "regime", "seed", "stage"]
    for k, g in neurons.groupby(keys, sort=True, dropna=False):
        ang, amp = g["angle"].to_numpy(), g["amplitude"].to_numpy()
        hist, _ = np.histogram(ang, bins=n_bins, range=(-math.pi, math.pi), weights=amp)
        top2 = float(np.sort(hist)[-2:].sum() / hist.sum()) if hist.sum() > 0 else math.nan
        rows.append(
            {
                **dict(zip(keys, k)),
                "n_eff": effective_directions(ang, amp, n_bins),
                "n_eff_count": effective_directions(ang, None, n_bins),
                "top2_mass": top2,
                "n_bins": n_bins,
                "amplitude_mean": float(amp.mean()),
            }
        )
    return pd.DataFrame(rows)
