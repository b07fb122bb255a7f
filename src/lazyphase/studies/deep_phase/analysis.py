"""B2: the deep phase diagram over ``(γ_h, s)``, per layer (docs/conventions.md §2, §4).

Coordinates: a cell with scheme ``deep:γ_h`` at ``s`` has hidden layers ``l = 2..L`` of std
``m^{-γ_h}`` and first and output layers of equal std ``m^{-γ_o}``,
``γ_o = ((L+1)/2 − (L−1)γ_h − s)/2``, so that ``κ = m^s`` whatever ``γ_h``. ``γ_h`` moves scale
between the hidden layers and the outer pair at fixed ``κ`` (the deep analogue of Luo et al.'s
``γ'``, which moves it between the input and output layer); at ``L = 1`` every ``γ_h`` is
Luo's ``γ' = 0``.

For every cell and layer the regime exponent is the slope of ``log RD`` against ``log m``
(:func:`lazyphase.stats.fit_exponents`, bootstrap over seeds), the regime follows the one rule
of :func:`lazyphase.stats.regime_labels`, and the boundary ``s*`` of every layer and ``γ_h`` is
the crossing of the exponent through 0 along ``s`` (:func:`lazyphase.stats.thresholds`),
refined by bisection in ``s`` (:func:`next_s`). Theta-lazy (Li, Luo & Zhou) predicts every
layer linear for ``s > 0``, for every ``γ_h``: ``s* ≤ 0`` for every layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lazyphase import stats
from lazyphase.core.model import deep_outer_gamma
from lazyphase.core.schemes import deep_gamma_h

S_LABEL = r"$s = \log\kappa\,/\log m$"
GAMMA_H_LABEL = r"$\gamma_h = -\log\beta_l\,/\log m$ (hidden layers $l = 2..L$)"
SLOPE_LABEL = r"regime exponent: slope of $\log\mathrm{RD}$ vs $\log m$"

#: The columns of :func:`deep_phase_table`'s ``phase``, in order.
PHASE_COLUMNS = (
    *("activation", "depth", "layer", "layer_name", "gamma_h", "s", "gamma_outer", "scheme"),
    *("slope", "ci_low", "ci_high", "r2", "n_m", "m_min", "m_max", "n_seeds", "n_replicas"),
    *("n_converged", "n_max_steps", "n_diverged", "median_final_step", "max_final_step", "round"),
    *("regime", "ci_contains_zero", "hatched"),
)


def gamma_h_of(scheme: str) -> float:
    """``γ_h`` of a ``deep:γ_h`` scheme (ValueError for any other scheme)."""
    gh = deep_gamma_h(scheme)
    if gh is None:
        raise ValueError(f"scheme {scheme!r} is not a deep phase-diagram scheme (deep:GAMMA_H)")
    return gh


def deep_phase_table(
    runs: pd.DataFrame,
    *,
    n_boot: int = 1000,
    ci: float = 0.9,
    seed: int = 0,
    r2_min: float = 0.5,
    refine_on: Sequence[str] = ("rd",),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The regime exponent of every layer per ``(activation, depth, γ_h, s)`` and the boundary
    ``s*`` of every layer per ``(activation, depth, γ_h)``.

    Args:
        runs: the ``runs`` table of ``deep:γ_h`` cells, optional ``round`` column (0 = grid,
            r = bisection round r).
        n_boot, ci, seed: the paired bootstrap over seeds of :func:`stats.fit_exponents`.
        r2_min: cells whose fit has ``R² < r2_min`` are hatched (:func:`stats.hatched_cells`:
            so are cells with a replica that did not converge, e.g. stopped at ``max_steps``).

    Returns ``(phase, boundary)``:

    * ``phase``: :data:`PHASE_COLUMNS`, one row per layer and cell; ``ci_contains_zero`` marks
      exponents compatible with the critical value 0;
    * ``boundary``: one row per ``(activation, depth, layer, γ_h)``: ``s_star`` with
      ``s_star_low/high`` (bootstrap), ``frac_boot_cross, n_crossings, bracket_low/high`` (the
      adjacent ``s`` of the grid), ``n_s``, ``linear_above_0`` (every cell with ``s > 0`` of
      this layer and ``γ_h`` is linear: theta-lazy's prediction), ``note``.

    ``phase`` also has the function-space exponents ``fdist_slope, fdist_ci_low,
    fdist_ci_high`` and the same for ``fdist_conv`` (:func:`function_fits`); ``boundary`` their
    crossings ``s_star_f`` / ``s_star_fconv`` (``_low/_high``, ``frac_boot_cross_*``,
    ``bracket_*``, ``note_*``) and ``refined_on``, the criteria the bisection refined.
    """
    if "round" not in runs.columns:
        runs = runs.assign(round=0)
    runs = runs.assign(gamma_h=[gamma_h_of(sc) for sc in runs["scheme"]])
    exps, boot = stats.fit_exponents(runs, n_boot=n_boot, ci=ci, seed=seed)
    counts = runs.drop_duplicates(["scheme", "activation", "depth", "s", "m", "seed", "round"])
    counts = counts.groupby(["scheme", "activation", "depth", "s"]).agg(
        n_replicas=("status", "size"),
        n_converged=("status", lambda v: int((v == "converged").sum())),
        n_max_steps=("status", lambda v: int((v == "max_steps").sum())),
        n_diverged=("status", lambda v: int((v == "diverged").sum())),
        median_final_step=("final_step", "median"),
        max_final_step=("final_step", "max"),
        round=("round", "min"),
        m_min=("m", "min"),
        m_max=("m", "max"),
    )
    phase = exps.merge(counts.reset_index(), on=["scheme", "activation", "depth", "s"], how="left")
    phase["gamma_h"] = [gamma_h_of(sc) for sc in phase["scheme"]]
    phase["gamma_outer"] = [
        deep_outer_gamma(int(L), float(s), gh)
        for L, s, gh in zip(phase["depth"], phase["s"], phase["gamma_h"])
    ]
    phase["regime"] = stats.regime_labels(phase["slope"])
    phase["ci_contains_zero"] = (phase["ci_low"] <= 0) & (phase["ci_high"] >= 0)
    phase["hatched"] = stats.hatched_cells(
        phase["slope"], phase["r2"], phase["n_converged"], phase["n_replicas"], r2_min
    )
    keys = ["activation", "depth", "layer", "gamma_h", "s"]
    phase = phase[list(PHASE_COLUMNS)].sort_values(keys).reset_index(drop=True)
    thr = stats.thresholds(exps, boot, ci=ci)
    boundary = pd.DataFrame([_boundary_row(r, phase) for r in thr.itertuples()])
    fits = function_fits(runs, n_boot=n_boot, ci=ci, seed=seed)
    phase, boundary = _with_function_columns(phase, boundary, fits)
    boundary["refined_on"] = "+".join(refine_on)
    order = ["activation", "depth", "layer", "gamma_h"]
    return phase, boundary.sort_values(order).reset_index(drop=True)


#: The function-space criteria (``runs`` column → tag) and every bisection criterion.
F_CRITERIA, CRITERIA = stats.F_CRITERIA, stats.BISECTION_CRITERIA
_CELL_KEYS = ["activation", "depth", "scheme", "s"]


def function_fits(
    runs: pd.DataFrame, *, n_boot: int = 1000, ci: float = 0.9, seed: int = 0
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per :data:`F_CRITERIA` column: its exponent against ``m`` per cell and its crossing
    through 0 along ``s`` per ``(activation, depth, γ_h)`` (one number per replica, not per
    layer; :func:`stats.function_exponents`, the same paired seed bootstrap)."""
    by, thr_by = _CELL_KEYS, _CELL_KEYS[:-1]
    return {
        y: stats.function_exponents(
            runs, y=y, n_boot=n_boot, ci=ci, seed=seed, by=by, threshold_by=thr_by
        )
        for y in F_CRITERIA
    }


def _with_function_columns(
    phase: pd.DataFrame, boundary: pd.DataFrame, fits: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``phase`` + ``<y>_slope, <y>_ci_low, <y>_ci_high`` per cell (the same on every layer);
    ``boundary`` + ``s_star_<tag>(_low/_high), frac_boot_cross_<tag>, bracket_<tag>_low/high,
    note_<tag>`` per ``(activation, depth, γ_h)`` (the same on every layer)."""
    keys = ["activation", "depth", "gamma_h"]
    for y, tag in F_CRITERIA.items():
        exps, thr = fits[y]
        cols = {"slope": f"{y}_slope", "ci_low": f"{y}_ci_low", "ci_high": f"{y}_ci_high"}
        phase = phase.merge(exps[[*_CELL_KEYS, *cols]].rename(columns=cols), on=_CELL_KEYS,
                            how="left")  # fmt: skip
        rows = []
        for r in thr.itertuples():
            sel = ((exps["scheme"] == r.scheme) & (exps["activation"] == r.activation)
                   & (exps["depth"] == r.depth) & np.isfinite(exps["slope"]))  # fmt: skip
            lo, hi = stats.grid_bracket(np.sort(exps.loc[sel, "s"].to_numpy(float)), r.s_star)
            rows.append({
                "activation": r.activation, "depth": int(r.depth), "gamma_h": gamma_h_of(r.scheme),
                f"s_star_{tag}": r.s_star, f"s_star_{tag}_low": r.s_star_low,
                f"s_star_{tag}_high": r.s_star_high, f"frac_boot_cross_{tag}": r.frac_boot_cross,
                f"bracket_{tag}_low": lo, f"bracket_{tag}_high": hi, f"note_{tag}": r.note,
            })  # fmt: skip
        boundary = boundary.merge(pd.DataFrame(rows), on=keys, how="left")
    return phase, boundary


def _boundary_row(r, phase: pd.DataFrame) -> dict[str, object]:
    """The ``boundary`` row of one :func:`stats.thresholds` row ``r``."""
    gh = gamma_h_of(r.scheme)
    cells = phase[
        (phase["scheme"] == r.scheme)
        & (phase["activation"] == r.activation)
        & (phase["depth"] == r.depth)
        & (phase["layer"] == r.layer)
    ]
    grid = np.sort(cells["s"].to_numpy(dtype=float)[np.isfinite(cells["slope"])])
    lo, hi = stats.grid_bracket(grid, r.s_star)
    above = cells[cells["s"] > 0]
    return {
        "activation": r.activation,
        "depth": int(r.depth),
        "layer": int(r.layer),
        "layer_name": r.layer_name,
        "gamma_h": gh,
        "s_star": r.s_star,
        "s_star_low": r.s_star_low,
        "s_star_high": r.s_star_high,
        "frac_boot_cross": r.frac_boot_cross,
        "n_crossings": r.n_crossings,
        "bracket_low": lo,
        "bracket_high": hi,
        "n_s": r.n_s,
        "linear_above_0": bool(len(above) and (above["regime"] == "linear").all()),
        "note": r.note,
    }


def next_s(
    runs: pd.DataFrame, tol: float, criteria: Sequence[str] = ("rd",)
) -> list[dict[str, object]]:
    """One bisection step: the cells ``{activation, depth, scheme, s}`` at the midpoints of the
    ``s`` brackets wider than ``2 tol`` of every sign change of the ``criteria``
    (:data:`CRITERIA`: ``rd`` every layer's exponent, ``fdist``/``fdist_conv`` the function
    exponent; one cell serves every layer and criterion: duplicates are merged)."""
    stats.check_criteria(criteria)
    _, boundary = deep_phase_table(runs, n_boot=0)
    cols = {"rd": ("bracket_low", "bracket_high")}
    cols |= {y: (f"bracket_{t}_low", f"bracket_{t}_high") for y, t in F_CRITERIA.items()}
    out: dict[tuple, dict[str, object]] = {}
    for crit in criteria:
        for r in boundary.to_dict("records"):
            mid = stats.bisection_midpoint(r[cols[crit][0]], r[cols[crit][1]], tol)
            if mid is not None:
                scheme = f"deep:{r['gamma_h']:g}"
                key = (r["activation"], int(r["depth"]), scheme, mid)
                out[key] = dict(activation=r["activation"], depth=int(r["depth"]), scheme=scheme,
                                s=mid)  # fmt: skip
    return list(out.values())
