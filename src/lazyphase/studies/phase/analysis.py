"""B1: the two-layer phase diagram of Luo, Xu, Ma & Zhang (JMLR 2021) in ``(γ', γ)``.

Coordinates (docs/conventions.md §2): for ``f = (1/α) Σ_k a_k σ(w_k·x)`` with ``w ~ N(0, β_1²)``,
``a ~ N(0, β_2²)``: ``γ = −log(β_1β_2/α)/log m = 1 − s`` and ``γ' = −log(β_2/β_1)/log m``
(the cell scheme ``luo:γ'``). The regime exponent of the input weights is
``S_w = −slope(log RD(W1), log m)``: ``S_w > 0`` linear (lazy), ``S_w < 0`` condensed, ``≈ 0``
critical. Luo et al.'s boundary is ``γ = 1`` for ``γ' ≤ 0`` and ``γ' = γ − 1`` for ``γ' > 0``;
a naive scaling argument gives ``γ = 1 + 2γ'`` there instead — the data decide.

* :func:`phase_table` — ``S_w`` per ``(γ', γ)`` with bootstrap intervals, and the boundary
  ``γ*`` per ``γ'`` (:func:`lazyphase.analysis.thresholds` along ``s = 1 − γ``).
* :func:`next_gammas` / :func:`refine` — bisection in ``γ`` around each sign change.
* :func:`plot_phase_diagram` — the heatmap with the theory lines, NTK and mean-field points.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lazyphase import stats as analysis
from lazyphase.core.schemes import luo_gamma_prime, luo_scheme

log = logging.getLogger("lazyphase.phase")

#: The layer whose exponent defines the regime (the input weights).
LAYER = "W1"
#: Points of the diagram (γ', γ): Luo et al.'s NTK (α = √m, β = 1) and mean-field (α = m) scalings.
NTK_POINT, MEAN_FIELD_POINT = (0.0, 0.5), (0.0, 1.0)
GAMMA_LABEL = r"$\gamma = -\log(\beta_1\beta_2/\alpha)\,/\log m = 1 - s$"
GAMMA_PRIME_LABEL = r"$\gamma' = -\log(\beta_2/\beta_1)\,/\log m$"
SW_LABEL = r"$S_w$ = −slope of $\log\mathrm{RD}(W^{[1]})$ vs $\log m$"


def luo_coordinates(scheme: str, s: float) -> tuple[float, float]:
    """``(γ', γ)`` of a cell with scheme ``luo:γ'`` at ``s`` (``γ = 1 − s``)."""
    gamma_prime = luo_gamma_prime(scheme)
    if gamma_prime is None:
        raise ValueError(f"scheme {scheme!r} is not in Luo et al.'s coordinates (luo:GAMMA_PRIME)")
    return gamma_prime, round(1.0 - float(s), 12)


def luo_boundary(gamma_prime: np.ndarray | float) -> np.ndarray:
    """Luo et al.'s linear/condensed boundary: ``γ = 1`` for ``γ' ≤ 0``, ``γ = 1 + γ'`` above."""
    gp = np.asarray(gamma_prime, dtype=float)
    return 1.0 + np.maximum(gp, 0.0)


def scaling_boundary(gamma_prime: np.ndarray | float) -> np.ndarray:
    """The other candidate for ``γ' > 0``: ``γ = 1 + 2γ'`` (``γ = 1`` for ``γ' ≤ 0``)."""
    gp = np.asarray(gamma_prime, dtype=float)
    return 1.0 + 2.0 * np.maximum(gp, 0.0)


def with_coordinates(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` plus the columns ``gamma_prime`` and ``gamma`` (from ``scheme`` and ``s``)."""
    coords = [luo_coordinates(sc, s) for sc, s in zip(runs["scheme"], runs["s"])]
    out = runs.copy()
    out["gamma_prime"] = [c[0] for c in coords]
    out["gamma"] = [c[1] for c in coords]
    return out


def phase_table(
    runs: pd.DataFrame,
    *,
    n_boot: int = 1000,
    ci: float = 0.9,
    seed: int = 0,
    r2_min: float = 0.5,
    refine_on: Sequence[str] = ("rd",),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``S_w`` per ``(γ', γ)`` and the boundary ``γ*`` per ``γ'``, with the function-space
    exponents and boundaries beside them (:func:`function_fits`).

    Args:
        runs: the ``runs`` table (:func:`lazyphase.tables.collect`) of ``luo:γ'`` cells, with an
            optional ``round`` column (0 = coarse grid, r = bisection round r).
        n_boot, ci, seed: the paired bootstrap over seeds of :func:`analysis.fit_exponents`.
        r2_min: cells whose fit has ``R² < r2_min`` are marked ``hatched`` (so are cells with a
            replica that did not converge, and cells without a finite exponent).
        refine_on: the criteria the bisection refined (:data:`CRITERIA`), for ``refined_on``.

    Returns ``(phase, boundary)``:

    * ``phase``: one row per ``(γ', γ)``: ``gamma_prime, gamma, s, S_w, S_w_low, S_w_high``
      (``ci`` interval), ``r2, n_m, n_seeds, n_replicas, n_converged, n_diverged, round,
      regime`` (``linear`` if ``S_w > 0``, ``condensed`` if ``< 0``, ``undetermined`` if NaN),
      ``hatched``;
    * ``boundary``: one row per ``γ'``: ``gamma_star`` (where ``S_w`` changes sign from ``> 0``
      at smaller ``γ`` to ``≤ 0``, linear interpolation), ``gamma_star_low/high`` (bootstrap),
      ``frac_boot_cross, n_crossings, bracket_low, bracket_high`` (the adjacent grid ``γ``
      values), ``n_gamma, luo_line, scaling_line, nearer`` (the candidate line nearer to
      ``γ*``), ``luo_in_ci`` / ``scaling_in_ci`` and ``note``.

    ``phase`` also has ``fdist_slope, fdist_ci_low, fdist_ci_high`` and the same for
    ``fdist_conv`` (the exponents of the distance to the kernel predictor at equal time and
    converged, against ``m``); ``boundary`` the γ where they change sign, ``gamma_star_f`` /
    ``gamma_star_fconv`` (with ``_low/_high``, ``frac_boot_cross_*``, ``bracket_*``,
    ``note_*``) and ``refined_on``.
    """
    acts = runs[["activation", "depth"]].drop_duplicates()
    if len(acts) != 1:
        raise ValueError(
            "a phase diagram is for one activation and depth; got "
            f"{acts.to_dict('records')} (use one phase_diagram experiment for each)"
        )
    if "round" not in runs.columns:
        runs = runs.assign(round=0)
    w = runs[runs["layer_name"] == LAYER]
    if w.empty:
        raise ValueError(f"runs has no rows of layer {LAYER}")
    exps, boot = analysis.fit_exponents(w, n_boot=n_boot, ci=ci, seed=seed)
    phase = _phase_frame(exps, _cell_counts(w), r2_min)
    thr = analysis.thresholds(exps, boot, ci=ci)
    boundary = pd.DataFrame([_boundary_row(r, phase) for r in thr.itertuples()])
    fits = function_fits(w, n_boot=n_boot, ci=ci, seed=seed)
    phase, boundary = _with_function_columns(phase, boundary, fits)
    boundary["refined_on"] = "+".join(refine_on)
    boundary = boundary.sort_values("gamma_prime").reset_index(drop=True)
    return phase, boundary


#: The function-space criteria (``runs`` column → tag) and every bisection criterion.
F_CRITERIA, CRITERIA = analysis.F_CRITERIA, analysis.BISECTION_CRITERIA


def function_fits(
    w: pd.DataFrame, *, n_boot: int = 1000, ci: float = 0.9, seed: int = 0
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per :data:`F_CRITERIA` column: its exponent against ``m`` per ``(scheme, s)`` and its
    crossing through 0 per scheme (:func:`analysis.function_exponents`, the same paired seed
    bootstrap as ``S_w``)."""
    return {
        y: analysis.function_exponents(
            w, y=y, n_boot=n_boot, ci=ci, seed=seed, by=("scheme", "s"), threshold_by=("scheme",)
        )
        for y in F_CRITERIA
    }


def _with_function_columns(
    phase: pd.DataFrame, boundary: pd.DataFrame, fits: dict
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``phase`` + ``<y>_slope, <y>_ci_low, <y>_ci_high`` per cell; ``boundary`` +
    ``gamma_star_<tag>(_low/_high), frac_boot_cross_<tag>, bracket_<tag>_low/high, note_<tag>``
    per ``γ'`` (``γ* = 1 − s*`` of the function exponent's crossing)."""
    for y, tag in F_CRITERIA.items():
        exps, thr = fits[y]
        cols = {"slope": f"{y}_slope", "ci_low": f"{y}_ci_low", "ci_high": f"{y}_ci_high"}
        phase = phase.merge(exps[["scheme", "s", *cols]].rename(columns=cols), on=["scheme", "s"],
                            how="left")  # fmt: skip
        rows = []
        for r in thr.itertuples():
            grid = np.sort(1.0 - exps.loc[(exps["scheme"] == r.scheme)
                                          & np.isfinite(exps["slope"]), "s"].to_numpy(float))
            lo, hi = analysis.grid_bracket(grid, 1.0 - r.s_star)  # fmt: skip
            rows.append({
                "gamma_prime": luo_coordinates(r.scheme, 0.0)[0],
                f"gamma_star_{tag}": 1.0 - r.s_star,
                f"gamma_star_{tag}_low": 1.0 - r.s_star_high,
                f"gamma_star_{tag}_high": 1.0 - r.s_star_low,
                f"frac_boot_cross_{tag}": r.frac_boot_cross,
                f"bracket_{tag}_low": lo,
                f"bracket_{tag}_high": hi,
                f"note_{tag}": r.note,
            })  # fmt: skip
        boundary = boundary.merge(pd.DataFrame(rows), on="gamma_prime", how="left")
    return phase, boundary


#: The columns of :func:`phase_table`'s ``phase``, in order.
_PHASE_COLUMNS = (
    *("gamma_prime", "gamma", "s", "scheme", "activation", "S_w", "S_w_low", "S_w_high"),
    *("r2", "n_m", "m_min", "m_max", "n_seeds", "n_replicas", "n_converged", "n_diverged"),
    *("round", "regime", "hatched"),
)


def _cell_counts(w: pd.DataFrame) -> pd.DataFrame:
    """Per ``(scheme, s)`` (the index): replica and status counts, first round, width range."""
    return w.groupby(["scheme", "s"]).agg(
        n_replicas=("status", "size"),
        n_converged=("status", lambda v: int((v == "converged").sum())),
        n_diverged=("status", lambda v: int((v == "diverged").sum())),
        round=("round", "min"),
        m_min=("m", "min"),
        m_max=("m", "max"),
    )


def _phase_frame(exps: pd.DataFrame, per_cell: pd.DataFrame, r2_min: float) -> pd.DataFrame:
    """The ``phase`` table: the exponents as ``S_w`` with coordinates, counts, regime, hatch."""
    phase = with_coordinates(exps.merge(per_cell.reset_index(), on=["scheme", "s"], how="left"))
    phase["S_w"] = -phase["slope"]
    phase["S_w_low"], phase["S_w_high"] = -phase["ci_high"], -phase["ci_low"]
    phase["regime"] = analysis.regime_labels(phase["slope"])
    phase["hatched"] = analysis.hatched_cells(
        phase["slope"], phase["r2"], phase["n_converged"], phase["n_replicas"], r2_min
    )
    return phase[list(_PHASE_COLUMNS)].sort_values(["gamma_prime", "gamma"]).reset_index(drop=True)


def _boundary_row(r, phase: pd.DataFrame) -> dict[str, object]:
    """The ``boundary`` row of one :func:`analysis.thresholds` row ``r`` (``s* → γ* = 1 − s*``)."""
    gp = luo_coordinates(r.scheme, 0.0)[0]
    grid = np.sort(phase.loc[phase["scheme"] == r.scheme, "gamma"].to_numpy(dtype=float))
    star = 1.0 - r.s_star
    lo, hi = analysis.grid_bracket(grid, star)
    g_lo, g_hi = 1.0 - r.s_star_high, 1.0 - r.s_star_low
    luo, scal = float(luo_boundary(gp)), float(scaling_boundary(gp))
    nearer = ""
    if np.isfinite(star):
        nearer = "luo" if abs(star - luo) <= abs(star - scal) else "scaling"
        if gp <= 0:
            nearer = "both (gamma = 1)"
    return {
        "gamma_prime": gp,
        "gamma_star": star,
        "gamma_star_low": g_lo,
        "gamma_star_high": g_hi,
        "frac_boot_cross": r.frac_boot_cross,
        "n_crossings": r.n_crossings,
        "bracket_low": lo,
        "bracket_high": hi,
        "n_gamma": len(grid),
        "luo_line": luo,
        "scaling_line": scal,
        "nearer": nearer,
        "luo_in_ci": bool(g_lo <= luo <= g_hi),
        "scaling_in_ci": bool(g_lo <= scal <= g_hi),
        "note": r.note,
    }


def next_gammas(runs: pd.DataFrame, tol: float) -> dict[str, float]:
    """One bisection step: for each scheme ``luo:γ'`` whose ``S_w`` changes sign, the midpoint
    of the bracketing ``γ`` interval, if that interval is wider than ``2 tol``."""
    return {sc: g for sc, g in bisection_points(runs, tol, ("rd",))}


def bisection_points(
    runs: pd.DataFrame, tol: float, criteria: Sequence[str] = ("rd",)
) -> list[tuple[str, float]]:
    """One bisection step over every criterion of ``criteria`` (:data:`CRITERIA`): the
    ``(scheme, γ)`` midpoints of every bracket wider than ``2 tol`` of a sign change (``rd``:
    ``S_w``; ``fdist``/``fdist_conv``: the function exponent), merged, sorted."""
    analysis.check_criteria(criteria)
    _, boundary = phase_table(runs, n_boot=0)
    cols = {"rd": ("bracket_low", "bracket_high")}
    cols |= {y: (f"bracket_{t}_low", f"bracket_{t}_high") for y, t in F_CRITERIA.items()}
    out = set()
    for crit in criteria:
        lo, hi = cols[crit]
        for gp, a, b in zip(boundary["gamma_prime"], boundary[lo], boundary[hi]):
            mid = analysis.bisection_midpoint(a, b, tol)
            if mid is not None:
                out.add((luo_scheme(gp), mid))
    return sorted(out)
