"""Tables of the ``lr_phase_portrait`` figure, from the ``runs`` table of an experiment whose
cells have a ``parameterization``, ``lr_policy: critical`` (``lr_c = η/η_crit``) and
``safeguard: none`` (docs/conventions.md §3, §7). ``alpha`` is the richness ``γ0``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lazyphase.stats import fit_exponents

#: The layer whose RD exponent the portrait shows (the first layer: it exists at every depth).
PORTRAIT_LAYER = "W1"
#: Cells whose replicas diverged in at least this fraction count as diverged.
DIVERGED_FRACTION = 0.5
CELL = ["parameterization", "alpha", "lr_c"]


def portrait(runs: pd.DataFrame, parameterization: str) -> pd.DataFrame:
    """Per ``(alpha, lr_c)`` of one parameterization: the RD exponent of layer
    :data:`PORTRAIT_LAYER` (slope of ``log RD_final`` against ``log m`` over the non-diverged
    replicas), ``eta_lambda`` and ``rd_wide`` (medians of ``η λ_max(Θ_T/n)`` and of the RD at
    the largest width, non-diverged),
    ``diverged`` (fraction of diverged replicas over every width) and ``is_diverged``."""
    rows = runs[(runs["parameterization"] == parameterization)]
    layer = rows[rows["layer_name"] == PORTRAIT_LAYER]
    exps, _ = fit_exponents(layer, by=CELL, n_boot=0)
    div = layer.assign(d=layer["status"] == "diverged").groupby(CELL)["d"].mean()
    wide = layer[(layer["m"] == layer["m"].max()) & (layer["status"] != "diverged")]
    lam = wide.groupby(CELL)[["eta_lambda_final", "rd_final"]].median()
    out = exps.set_index(CELL)[["slope", "n_m"]].join(div.rename("diverged"), how="outer")
    lam = lam.rename(columns={"eta_lambda_final": "eta_lambda", "rd_final": "rd_wide"})
    out = out.join(lam, how="left").reset_index()
    out["is_diverged"] = out["diverged"] >= DIVERGED_FRACTION
    return out.sort_values(["alpha", "lr_c"], ignore_index=True)


def largest_stable(runs: pd.DataFrame, alpha: float | None = None) -> pd.DataFrame:
    """Per ``(parameterization, m)``: ``eta_max``, the largest step ``η`` (``lr0``, the base step
    before the per-layer factors ``r_l``) over the ``lr_c`` at which no replica diverged, and
    ``lr_c_max`` that ``lr_c``; ``bounded``: whether a larger ``lr_c`` of the grid diverged (else
    ``eta_max`` is only a lower bound). ``alpha``: the ``γ0`` used (default: closest to 1)."""
    if alpha is None:
        vals = np.sort(runs["alpha"].unique())
        alpha = float(vals[np.argmin(np.abs(np.log(vals)))])
    one = runs[(runs["layer"] == 1) & np.isclose(runs["alpha"], alpha)]
    keys = ["parameterization", "m", "lr_c"]
    cells = one.groupby(keys).agg(
        stable=("status", lambda s: bool((s != "diverged").all())), eta=("lr0", "mean")
    )
    rows = []
    for (param, m), grp in cells.reset_index().groupby(["parameterization", "m"]):
        ok = grp[grp["stable"]]
        if ok.empty:
            continue
        best = ok.loc[ok["lr_c"].idxmax()]
        bounded = bool((~grp["stable"] & (grp["lr_c"] > best["lr_c"])).any())
        rows.append(dict(parameterization=param, m=m, alpha=alpha, lr_c_max=best["lr_c"],
                         eta_max=best["eta"], bounded=bounded))  # fmt: skip
    return pd.DataFrame(rows)


def stable_slopes(table: pd.DataFrame) -> pd.DataFrame:
    """Per parameterization the least-squares slope of ``log eta_max`` against ``log m``."""
    rows = []
    for param, grp in table.groupby("parameterization"):
        if grp["m"].nunique() < 2:
            continue
        slope = np.polyfit(np.log(grp["m"]), np.log(grp["eta_max"]), 1)[0]
        rows.append(dict(parameterization=param, slope=float(slope), n_m=grp["m"].nunique()))
    return pd.DataFrame(rows)
