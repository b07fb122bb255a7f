"""B1: the two-layer phase diagram of Luo, Xu, Ma & Zhang (JMLR 2021) in ``(γ', γ)``.

Coordinates (CONVENTIONS §2): for ``f = (1/α) Σ_k a_k σ(w_k·x)`` with ``w ~ N(0, β_1²)``,
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
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from . import analysis
from .figures import _save, _style, _suptitle
from .grid import slug
from .jobs import train_cells
from .tables import collect

log = logging.getLogger("lazyphase.phase")

#: The layer whose exponent defines the regime (the input weights).
LAYER = "W1"
#: Points of the diagram (γ', γ): Luo et al.'s NTK (α = √m, β = 1) and mean-field (α = m) scalings.
NTK_POINT, MEAN_FIELD_POINT = (0.0, 0.5), (0.0, 1.0)
GAMMA_LABEL = "γ = −log(β₁β₂/α) / log m  (= 1 − s)"
GAMMA_PRIME_LABEL = "γ′ = −log(β₂/β₁) / log m"
SW_LABEL = "S_w = −slope of log RD(W1) vs log m"


def luo_coordinates(scheme: str, s: float) -> tuple[float, float]:
    """``(γ', γ)`` of a cell with scheme ``luo:γ'`` at ``s`` (``γ = 1 − s``)."""
    if not (isinstance(scheme, str) and scheme.startswith("luo:")):
        raise ValueError(f"scheme {scheme!r} is not in Luo et al.'s coordinates (luo:GAMMA_PRIME)")
    return float(scheme.split(":", 1)[1]), round(1.0 - float(s), 12)


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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``S_w`` per ``(γ', γ)`` and the boundary ``γ*`` per ``γ'``.

    Args:
        runs: the ``runs`` table (:func:`lazyphase.tables.collect`) of ``luo:γ'`` cells, with an
            optional ``round`` column (0 = coarse grid, r = bisection round r).
        n_boot, ci, seed: the paired bootstrap over seeds of :func:`analysis.fit_exponents`.
        r2_min: cells whose fit has ``R² < r2_min`` are marked ``hatched`` (so are cells with a
            replica that did not converge, and cells without a finite exponent).

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
    per_cell = w.groupby(["scheme", "s"]).agg(
        n_replicas=("status", "size"),
        n_converged=("status", lambda v: int((v == "converged").sum())),
        n_diverged=("status", lambda v: int((v == "diverged").sum())),
        round=("round", "min"),
        m_min=("m", "min"),
        m_max=("m", "max"),
    )
    phase = with_coordinates(exps.merge(per_cell.reset_index(), on=["scheme", "s"], how="left"))
    phase["S_w"] = -phase["slope"]
    phase["S_w_low"], phase["S_w_high"] = -phase["ci_high"], -phase["ci_low"]
    phase["regime"] = np.where(
        ~np.isfinite(phase["S_w"]),
        "undetermined",
        np.where(phase["S_w"] > 0, "linear", "condensed"),
    )
    phase["hatched"] = (
        ~np.isfinite(phase["S_w"])
        | (phase["r2"].fillna(0.0) < r2_min)
        | (phase["n_converged"] < phase["n_replicas"])
    )
    cols = ["gamma_prime", "gamma", "s", "scheme", "activation", "S_w", "S_w_low", "S_w_high"]
    cols += ["r2", "n_m", "m_min", "m_max", "n_seeds", "n_replicas", "n_converged", "n_diverged"]
    cols += ["round"]
    cols += ["regime", "hatched"]
    phase = phase[cols].sort_values(["gamma_prime", "gamma"]).reset_index(drop=True)

    thr = analysis.thresholds(exps, boot, ci=ci)
    rows = []
    for r in thr.itertuples():
        gp = luo_coordinates(r.scheme, 0.0)[0]
        grid = np.sort(phase.loc[phase["scheme"] == r.scheme, "gamma"].to_numpy(dtype=float))
        star = 1.0 - r.s_star
        lo, hi = _bracket(grid, star)
        g_lo, g_hi = 1.0 - r.s_star_high, 1.0 - r.s_star_low
        luo, scal = float(luo_boundary(gp)), float(scaling_boundary(gp))
        nearer = ""
        if np.isfinite(star):
            nearer = "luo" if abs(star - luo) <= abs(star - scal) else "scaling"
            if gp <= 0:
                nearer = "both (gamma = 1)"
        rows.append(
            {
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
        )
    boundary = pd.DataFrame(rows).sort_values("gamma_prime").reset_index(drop=True)
    return phase, boundary


def _bracket(grid: np.ndarray, star: float) -> tuple[float, float]:
    """The adjacent grid values around ``star`` (``grid`` sorted; NaN if ``star`` is NaN)."""
    if not np.isfinite(star):
        return np.nan, np.nan
    below, above = grid[grid <= star + 1e-12], grid[grid > star + 1e-12]
    return (
        float(below.max()) if below.size else np.nan,
        float(above.min()) if above.size else np.nan,
    )


def next_gammas(runs: pd.DataFrame, tol: float) -> dict[str, float]:
    """One bisection step: for each scheme ``luo:γ'`` whose ``S_w`` changes sign, the midpoint
    of the bracketing ``γ`` interval, if that interval is wider than ``2 tol``."""
    _, boundary = phase_table(runs, n_boot=0)
    out = {}
    for r in boundary.itertuples():
        if np.isfinite(r.bracket_low) and np.isfinite(r.bracket_high):
            if (r.bracket_high - r.bracket_low) / 2 > tol + 1e-12:
                out[f"luo:{r.gamma_prime:g}"] = round((r.bracket_low + r.bracket_high) / 2, 12)
    return out


def refine(
    cells: Sequence[Mapping[str, Any]],
    runs: pd.DataFrame,
    out_dir: str,
    experiment: str,
    *,
    tol: float = 0.05,
    rounds: int = 3,
    dataset: str | None = None,
    threads: int = 1,
) -> pd.DataFrame:
    """Bisection in ``γ`` around the sign change of ``S_w``, one training round at a time.

    Each round adds, for every ``γ'`` whose bracket is still wider than ``2 tol``, the cells at
    the bracket's midpoint for every width of ``cells`` (copies of that ``γ'``'s cells with the
    new ``s``; all ``γ'`` of one width train in one batch) and writes their run files to
    ``out_dir/round<r>/m~<m>/``. Returns the ``runs`` rows of the new cells with a ``round``
    column (empty when nothing needs refining); ``runs`` is the coarse table.
    """
    templates: dict[tuple[int, str], Mapping[str, Any]] = {}
    for c in cells:
        templates.setdefault((c["m"], c["scheme"]), c)
    widths = sorted({m for m, _ in templates})
    table = runs.assign(round=runs.get("round", 0))
    new_parts = []
    for r in range(1, rounds + 1):
        mids = next_gammas(table, tol)
        if not mids:
            log.info("round %d: every bracket is within +-%g; done", r, tol)
            break
        log.info("round %d: gamma midpoints %s", r, mids)
        paths = []
        for m in widths:
            batch = [
                {**templates[(m, sc)], "s": round(1.0 - g, 12)}
                for sc, g in mids.items()
                if (m, sc) in templates
            ]
            outs = [
                os.path.join(
                    out_dir,
                    f"round{r}",
                    f"m~{m}",
                    f"s~{slug(c['s'])}_scheme~{slug(c['scheme'])}.h5",
                )
                for c in batch
            ]
            train_cells(batch, outs, threads=threads, dataset=dataset)
            paths += outs
        part = collect(paths, experiment)[0].assign(round=r)
        new_parts.append(part)
        table = pd.concat([table, part], ignore_index=True)
    if not new_parts:
        return runs.iloc[0:0].assign(round=pd.Series(dtype=int))
    return pd.concat(new_parts, ignore_index=True)


# ----------------------------------------------------------------------------- figure
def plot_phase_diagram(
    phase: pd.DataFrame,
    boundary: pd.DataFrame,
    out_pdf: str,
    out_png: str | None = None,
) -> None:
    """B1: heatmap of ``S_w`` over ``(γ', γ)`` (coarse cells as tiles, bisection cells as
    squares), hatched where the fit is poor or a replica did not converge; the theory lines, the
    measured boundary ``γ*`` with its interval, NTK and mean-field points; right panel ``S_w``
    against ``γ`` per ``γ'``."""
    coarse = phase[phase["round"] == 0]
    gps = np.sort(coarse["gamma_prime"].unique())
    gs = np.sort(coarse["gamma"].unique())
    fin = phase["S_w"][np.isfinite(phase["S_w"])]
    vmax = float(np.nanmax(np.abs(fin))) if len(fin) else 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax or -1.0, vmax=vmax or 1.0)
    cmap = "RdBu"

    def edges(v: np.ndarray) -> np.ndarray:
        if len(v) == 1:
            return np.array([v[0] - 0.5, v[0] + 0.5])
        mid = (v[1:] + v[:-1]) / 2
        return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])

    ex, ey = edges(gps), edges(gs)
    with _style():
        fig = Figure(figsize=(13.0, 7.0), layout="constrained")
        ax, ax2 = fig.subplots(1, 2, width_ratios=[1.25, 1])
        grid = np.full((len(gs), len(gps)), np.nan)
        for row in coarse.itertuples():
            i, j = np.searchsorted(gs, row.gamma), np.searchsorted(gps, row.gamma_prime)
            grid[i, j] = row.S_w
        mesh = ax.pcolormesh(ex, ey, grid, cmap=cmap, norm=norm, shading="flat")
        for row in coarse.itertuples():
            i, j = np.searchsorted(gs, row.gamma), np.searchsorted(gps, row.gamma_prime)
            if row.hatched:
                w, h = ex[j + 1] - ex[j], ey[i + 1] - ey[i]
                hatch = dict(fill=False, hatch="///", edgecolor="0.35", linewidth=0)
                ax.add_patch(Rectangle((ex[j], ey[i]), w, h, **hatch))
            txt = "n/a" if not np.isfinite(row.S_w) else f"{row.S_w:+.2f}".replace("-", "−")
            dark = np.isfinite(row.S_w) and abs(row.S_w) > 0.6 * vmax
            ax.text(row.gamma_prime, row.gamma, txt, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")  # fmt: skip
        fine = phase[phase["round"] > 0]
        if len(fine):
            ax.scatter(
                fine["gamma_prime"], fine["gamma"], c=fine["S_w"], cmap=cmap, norm=norm,
                marker="s", s=70, edgecolors=np.where(fine["hatched"], "0.4", "k"),
                linewidths=np.where(fine["hatched"], 1.8, 0.8), zorder=3,
                label="bisection cells (grey edge: hatched)",
            )  # fmt: skip
        x = np.linspace(ex[0], ex[-1], 200)
        neg = x <= 0
        ax.plot(x[neg], np.ones(neg.sum()), "k-", lw=2, label="γ = 1 (γ′ ≤ 0; Luo et al.)")
        ax.plot(x[~neg], luo_boundary(x[~neg]), "k--", lw=2, label="γ′ = γ − 1 (Luo et al.)")
        ax.plot(x[~neg], scaling_boundary(x[~neg]), "k:", lw=2, label="γ = 1 + 2γ′ (scaling)")
        ok = boundary[np.isfinite(boundary["gamma_star"])]
        if len(ok):
            ax.errorbar(
                ok["gamma_prime"], ok["gamma_star"],
                yerr=[
                    (ok["gamma_star"] - ok["gamma_star_low"]).clip(lower=0).fillna(0),
                    (ok["gamma_star_high"] - ok["gamma_star"]).clip(lower=0).fillna(0),
                ],
                fmt="o", color="gold", mec="k", ms=7, capsize=3, ecolor="k", zorder=4,
                label="measured γ* (bootstrap interval)",
            )  # fmt: skip
        ax.plot(*NTK_POINT, marker="*", ms=16, color="lime", mec="k", ls="", label="NTK (0, ½)")
        ax.plot(*MEAN_FIELD_POINT, marker="D", ms=9, color="magenta", mec="k", ls="",
                label="mean field (0, 1)")  # fmt: skip
        ax.add_patch(Rectangle((0, 0), 0, 0, fill=False, hatch="///", edgecolor="0.35",
                               label="hatched: R² < r2_min or not converged"))  # fmt: skip
        ax.set_xlim(ex[0], ex[-1])
        ax.set_ylim(ey[0], ey[-1])
        ax.set_xlabel(GAMMA_PRIME_LABEL)
        ax.set_ylabel(GAMMA_LABEL)
        ax.set_title("S_w > 0 (blue): linear regime; S_w < 0 (red): condensed")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=3, fontsize=7)
        fig.colorbar(mesh, ax=ax, label=SW_LABEL, shrink=0.9)
        pal = dict(zip(gps, sns.color_palette("viridis", len(gps))))
        for gp in gps:
            d = phase[phase["gamma_prime"] == gp].sort_values("gamma")
            c = pal[gp]
            ax2.plot(d["gamma"], d["S_w"], "o-", color=c, ms=4, label=f"γ′ = {gp:g}")
            ax2.fill_between(d["gamma"], d["S_w_low"], d["S_w_high"], color=c, alpha=0.2, lw=0)
            b = boundary[boundary["gamma_prime"] == gp]
            if len(b) and np.isfinite(b["gamma_star"].iloc[0]):
                ax2.axvline(b["gamma_star"].iloc[0], color=c, ls=":", lw=1)
        ax2.axhline(0, color="k", lw=1)
        ax2.set_xlabel(GAMMA_LABEL)
        ax2.set_ylabel(SW_LABEL)
        ax2.set_title("S_w against γ (band: bootstrap interval; dotted: γ*)")
        ax2.legend(fontsize=7, title="γ′", title_fontsize=7)
        n_fine = int((phase["round"] > 0).sum())
        _suptitle(
            fig,
            f"B1: phase diagram of two-layer {phase['activation'].iloc[0]} networks "
            f"(Luo et al. 2021): m = {int(phase['m_min'].min())}…{int(phase['m_max'].max())} "
            f"({int(phase['n_m'].max())} widths), {int(phase['n_seeds'].max())} seeds per cell, "
            f"{len(phase) - n_fine} grid cells + {n_fine} bisection cells",
        )
        _save(fig, out_pdf, out_png)
