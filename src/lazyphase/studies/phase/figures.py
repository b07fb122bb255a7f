"""Figure B1: Luo et al.'s phase diagram from the ``phase`` and ``boundary`` tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from lazyphase.studies.phase.analysis import (
    GAMMA_LABEL,
    GAMMA_PRIME_LABEL,
    MEAN_FIELD_POINT,
    NTK_POINT,
    SW_LABEL,
    luo_boundary,
    scaling_boundary,
)
from lazyphase.studies.plotting import plot_style, save, suptitle, tile_edges

_CMAP = "RdBu"


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
    ex, ey = tile_edges(gps), tile_edges(gs)
    with plot_style():
        fig = Figure(figsize=(13.0, 7.0), layout="constrained")
        ax, ax2 = fig.subplots(1, 2, width_ratios=[1.25, 1])
        mesh = _draw_cells(ax, phase, gps, gs, ex, ey, norm, vmax)
        _draw_theory(ax, boundary, ex, ey)
        fig.colorbar(mesh, ax=ax, label=SW_LABEL, shrink=0.9)
        _draw_profiles(ax2, phase, boundary, gps)
        suptitle(fig, _phase_title(phase))
        save(fig, out_pdf, out_png)


def _draw_cells(ax, phase, gps, gs, ex, ey, norm, vmax: float):
    """The coarse cells as labelled tiles (hatched ones hatched) and the bisection cells as
    squares; returns the mesh (for the colour bar)."""
    coarse = phase[phase["round"] == 0]
    grid = np.full((len(gs), len(gps)), np.nan)
    for row in coarse.itertuples():
        i, j = np.searchsorted(gs, row.gamma), np.searchsorted(gps, row.gamma_prime)
        grid[i, j] = row.S_w
    mesh = ax.pcolormesh(ex, ey, grid, cmap=_CMAP, norm=norm, shading="flat")
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
            fine["gamma_prime"], fine["gamma"], c=fine["S_w"], cmap=_CMAP, norm=norm,
            marker="s", s=70, edgecolors=np.where(fine["hatched"], "0.4", "k"),
            linewidths=np.where(fine["hatched"], 1.8, 0.8), zorder=3,
            label="bisection cells (grey edge: hatched)",
        )  # fmt: skip
    return mesh


def _draw_theory(ax, boundary: pd.DataFrame, ex: np.ndarray, ey: np.ndarray) -> None:
    """The candidate boundaries, the measured ``γ*``, the NTK and mean-field points, the axes
    and the legend of the heatmap."""
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


def _draw_profiles(ax2, phase: pd.DataFrame, boundary: pd.DataFrame, gps: np.ndarray) -> None:
    """The right panel: ``S_w`` against ``γ`` per ``γ'`` with its band and ``γ*``."""
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


def _phase_title(phase: pd.DataFrame) -> str:
    """The suptitle of B1: activation, width range, seeds, grid and bisection cells."""
    n_fine = int((phase["round"] > 0).sum())
    return (
        f"B1: phase diagram of two-layer {phase['activation'].iloc[0]} networks "
        f"(Luo et al. 2021): m = {int(phase['m_min'].min())}…{int(phase['m_max'].max())} "
        f"({int(phase['n_m'].max())} widths), {int(phase['n_seeds'].max())} seeds per cell, "
        f"{len(phase) - n_fine} grid cells + {n_fine} bisection cells"
    )


_REGIME_ORDER = {"linear": 0, "critical": 1, "condensed": 2}


def plot_condensation(
    neurons: pd.DataFrame,
    circle: pd.DataFrame,
    condensation: pd.DataFrame,
    out_pdf: str,
    out_png: str | None = None,
) -> None:
    """B3: per regime (columns) the neurons ``(angle of w_k, |a_k| ‖w_k‖)`` at initialization
    and at the end of training (first seed), and the learned function on the circle against the
    target; the effective number of directions ``n_eff`` (mean over seeds) in the titles."""
    points = neurons[["s", "gamma", "regime"]].drop_duplicates()
    points = points.assign(o=points["regime"].map(_REGIME_ORDER)).sort_values(["o", "gamma"])
    seed = int(neurons["seed"].min())
    ncol = len(points)
    with plot_style():
        fig = Figure(figsize=(4.2 * ncol, 9.6), layout="constrained")
        axes = np.atleast_2d(fig.subplots(3, ncol, squeeze=False))
        for j, p in enumerate(points.itertuples()):
            nsub = neurons[(neurons["s"] == p.s) & (neurons["seed"] == seed)]
            summ = condensation[condensation["s"] == p.s]
            for i, stage in enumerate(("init", "final")):
                ax = axes[i, j]
                d = nsub[nsub["stage"] == stage]
                ax.scatter(np.degrees(d["angle"]), d["amplitude"], s=14,
                           c=np.where(d["sign"] > 0, "tab:red", "tab:blue"), alpha=0.8, lw=0)  # fmt: skip
                n_eff = summ.loc[summ["stage"] == stage, "n_eff"]
                ax.set_title(
                    f"{p.regime} (γ = {p.gamma:g}, s = {p.s:g}), {stage}\n"
                    f"n_eff = {n_eff.mean():.1f} of {int(summ['n_bins'].iloc[0])} bins "
                    f"(mean of {summ['seed'].nunique()} seeds)",
                    fontsize=8,
                )
                ax.set_xlim(-180, 180)
                ax.set_xticks(range(-180, 181, 90))
                ax.set_ylim(bottom=0)
                ax.set_xlabel("orientation of w_k (degrees)")
                ax.set_ylabel("|a_k| ‖w_k‖" if j == 0 else "")
            ax = axes[2, j]
            c = circle[(circle["s"] == p.s) & (circle["seed"] == seed)]
            grid, tr = c[~c["train"]], c[c["train"]]
            deg = np.degrees(grid["angle"])
            ax.plot(deg, grid["target"], "k-", lw=1.5, label="target")
            ax.plot(deg, grid["f_final"], "-", color="tab:orange", lw=1.5, label="learned")
            ax.plot(deg, grid["f_init"], ":", color="0.5", lw=1, label="at init")
            ax.plot(np.degrees(tr["angle"]), tr["target"], "o", ms=4, mfc="w", mec="k",
                    label="training points")  # fmt: skip
            ax.set_xlim(-180, 180)
            ax.set_xticks(range(-180, 181, 90))
            ax.set_xlabel("input angle on the circle (degrees)")
            ax.set_ylabel("f(x)" if j == 0 else "")
            ax.set_title("function on the unit circle", fontsize=8)
        handles = [Line2D([], [], marker="o", ls="", color="tab:red", label="neuron, a_k > 0"),
                   Line2D([], [], marker="o", ls="", color="tab:blue", label="neuron, a_k < 0"),
                   *axes[2, 0].get_legend_handles_labels()[0]]  # fmt: skip
        fig.legend(handles=handles, loc="outside lower center", ncol=6, fontsize=8)
        m = int(neurons["neuron"].max()) + 1
        suptitle(fig, f"B3: condensation (Luo et al. 2021): two-layer ReLU, d = 2, m = {m}, "
                      f"γ′ = {neurons['gamma_prime'].iloc[0]:g}; neurons of seed {seed}")  # fmt: skip
        save(fig, out_pdf, out_png)
