"""Condensation at depth (B2): the effective number of directions of every hidden layer's
incoming weight vectors, at initialization and at the end (docs/deep_phase.md).

For layer ``l`` the incoming weight vectors of its ``m`` neurons are the rows of ``W[l]``
(``m × (d + b)`` for ``l = 1``, ``m × (m + b)`` above; with a bias its column is part of the
vector). ``n_eff = 1/tr(C²)`` of :func:`lazyphase.core.directions.effective_directions`: ``k``
for ``k`` repeated directions (any signs and scales), about ``m d_in/(m + d_in − 1)`` for a
random matrix. Condensation shows as ``n_eff(end)/n_eff(init) ≪ 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from lazyphase.core.directions import effective_directions, expected_random_second_moment
from lazyphase.core.schemes import deep_gamma_h
from lazyphase.store.runs import load_run

#: The columns of :func:`deep_condensation_table`, in order.
COLUMNS = (
    *("activation", "depth", "scheme", "gamma_h", "s", "m", "seed", "replica", "status"),
    *("layer", "layer_name", "fan_in", "n_eff_init", "n_eff_final", "n_eff_ratio"),
    "n_eff_random",
)


def deep_condensation_table(paths: Sequence[str]) -> pd.DataFrame:
    """One row per run file × replica × hidden layer ``l = 1..L`` (:data:`COLUMNS`):
    ``n_eff`` of the rows of ``W[l]`` at init and at the end, their ratio, and the expected
    ``n_eff`` of a random matrix of that shape (``n_eff_random``). Raises ``ValueError`` naming
    the file when it has no stored weights (raise ``weights_cap``)."""
    rows = []
    for path in paths:
        run = load_run(path, gram=False)
        cell = run.cell
        depth = int(cell["depth"])
        if f"weights/final/W{depth}" not in run.arrays:
            raise ValueError(f"{path}: no stored weights (raise weights_cap)")
        gh = deep_gamma_h(cell["scheme"])
        for layer in range(1, depth + 1):
            w0, wt = run[f"weights/init/W{layer}"], run[f"weights/final/W{layer}"]
            e0, et = effective_directions(w0), effective_directions(wt)
            m, fan_in = w0.shape[-2:]
            rand = 1.0 / expected_random_second_moment(m, fan_in)
            for r, seed in enumerate(run["replicas/seed"]):
                rows.append({
                    "activation": cell["activation"], "depth": depth, "scheme": cell["scheme"],
                    "gamma_h": float("nan") if gh is None else gh, "s": float(cell["s"]),
                    "m": int(cell["m"]), "seed": int(seed), "replica": r,
                    "status": run.attrs["status"][r], "layer": layer, "layer_name": f"W{layer}",
                    "fan_in": int(fan_in), "n_eff_init": float(e0[r]), "n_eff_final": float(et[r]),
                    "n_eff_ratio": float(et[r] / e0[r]), "n_eff_random": rand,
                })  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))
