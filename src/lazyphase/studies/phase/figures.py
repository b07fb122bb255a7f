"""Figure B1: Luo et al.'s phase diagram from the ``phase`` and ``boundary`` tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lazyphase.studies.phase.analysis import (
    GAMMA_LABEL,
    GAMMA_PRIME_LABEL,
    MEAN_FIELD_POINT,
    NTK_POINT,
    SW_LABEL,
    luo_boundary,
    scaling_boundary,
)
from lazyphase.studies.plotting import (
    figure_legend,
    label_tile,
    legend_right,
    norm_key,
    plotted,
    s_styles,
    suptitle,
    tile_color,
    tile_edges,
)

_CMAP = "RdBu"
_HATCH_LABEL = "hatched: $R^2$ < r2_min or a replica not converged"


def plot_phase_diagram(phase, boundary, out_pdf: str, out_png: str | None = None) -> None:
    plotted(build_phase_diagram, phase, boundary, out_pdf=out_pdf, out_png=out_png)


def build_phase_diagram(phase: pd.DataFrame, boundary: pd.DataFrame) -> Figure:
    """B1: heatmap of ``S_w`` over ``(γ', γ)`` (coarse cells as tiles with their value in the
    top-left corner, bisection cells as squares), hatched where the fit is poor or a replica did
    not converge (white hatching on dark tiles); the theory lines, the measured boundary ``γ*``
    with its interval, NTK and mean-field points; right panel ``S_w`` against ``γ`` per ``γ'``.
    One legend below the figure, the colour bar above the heatmap (clear of the right panel's
    axis label)."""
    coarse = phase[phase["round"] == 0]
    gps = np.sort(coarse["gamma_prime"].unique())
    gs = np.sort(coarse["gamma"].unique())
    fin = phase["S_w"][np.isfinite(phase["S_w"])]
    vmax = float(np.nanmax(np.abs(fin))) if len(fin) else 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax or -1.0, vmax=vmax or 1.0)
    ex, ey = tile_edges(gps), tile_edges(gs)
    fig = Figure(figsize=(13.0, 7.6), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.25, 1])
    mesh = _draw_cells(ax, phase, gps, gs, ex, ey, norm)
    _draw_theory(ax, boundary, ex, ey)
    ax.set_xticks(_thin(gps, 9))
    ax.set_yticks(_thin(gs, 12))
    fig.colorbar(mesh, ax=ax, location="top", shrink=0.8, pad=0.01,
                 label=f"{SW_LABEL}  (> 0 blue: linear; < 0 red: condensed)")  # fmt: skip
    _draw_profiles(ax2, phase, boundary, gps)
    handles = [*ax.get_legend_handles_labels()[0],
               Patch(facecolor="w", edgecolor="k", hatch="///", label=_HATCH_LABEL)]  # fmt: skip
    figure_legend(fig, handles, ncol=4)
    suptitle(fig, _phase_title(phase))
    return fig


def _thin(v: np.ndarray, most: int) -> np.ndarray:
    """At most ``most`` of the cell centres ``v`` as ticks (every k-th)."""
    return v[:: max(1, int(np.ceil(len(v) / most)))]


def _draw_cells(ax, phase, gps, gs, ex, ey, norm):
    """The coarse cells as labelled tiles (hatched ones hatched) and the bisection cells as
    squares; returns the mesh (for the colour bar)."""
    coarse = phase[phase["round"] == 0]
    grid = np.full((len(gs), len(gps)), np.nan)
    for row in coarse.itertuples():
        i, j = np.searchsorted(gs, row.gamma), np.searchsorted(gps, row.gamma_prime)
        grid[i, j] = row.S_w
    cmap = colormaps[_CMAP]
    mesh = ax.pcolormesh(ex, ey, grid, cmap=cmap, norm=norm, shading="flat")
    for row in coarse.itertuples():
        i, j = np.searchsorted(gs, row.gamma), np.searchsorted(gps, row.gamma_prime)
        txt = "n/a" if not np.isfinite(row.S_w) else f"{row.S_w:+.2f}".replace("-", "−")
        label_tile(ax, (ex[j], ex[j + 1]), (ey[i], ey[i + 1]), txt, hatched=bool(row.hatched),
                   rgba=tile_color(cmap, norm, row.S_w), fontsize=7)  # fmt: skip
    fine = phase[phase["round"] > 0]
    if len(fine):
        ax.scatter(
            fine["gamma_prime"], fine["gamma"], c=fine["S_w"], cmap=_CMAP, norm=norm,
            marker="s", s=60, edgecolors=np.where(fine["hatched"], "0.4", "k"),
            linewidths=np.where(fine["hatched"], 1.8, 0.8), zorder=3,
            label="bisection cells (grey edge: hatched)",
        )  # fmt: skip
    return mesh


def _draw_theory(ax, boundary: pd.DataFrame, ex: np.ndarray, ey: np.ndarray) -> None:
    """The candidate boundaries, the measured ``γ*``, the NTK and mean-field points and the
    axes of the heatmap (their legend entries go to the figure legend)."""
    x = np.linspace(ex[0], ex[-1], 200)
    neg = x <= 0
    ax.plot(x[neg], np.ones(neg.sum()), "k-", lw=2, label=r"$\gamma = 1$ ($\gamma' \leq 0$; Luo et al.)")
    ax.plot(x[~neg], luo_boundary(x[~neg]), "k--", lw=2, label=r"$\gamma' = \gamma - 1$ (Luo et al.)")
    ax.plot(x[~neg], scaling_boundary(x[~neg]), "k:", lw=2, label=r"$\gamma = 1 + 2\gamma'$ (scaling)")
    ok = boundary[np.isfinite(boundary["gamma_star"])]
    if len(ok):
        ax.errorbar(
            ok["gamma_prime"], ok["gamma_star"],
            yerr=[
                (ok["gamma_star"] - ok["gamma_star_low"]).clip(lower=0).fillna(0),
                (ok["gamma_star_high"] - ok["gamma_star"]).clip(lower=0).fillna(0),
            ],
            fmt="o", color="gold", mec="k", ms=7, capsize=3, ecolor="k", zorder=4,
            label=r"measured $\gamma^*$ (bootstrap interval)",
        )  # fmt: skip
    ax.plot(*NTK_POINT, marker="*", ms=16, color="lime", mec="k", ls="",
            label=r"NTK $(0, \frac{1}{2})$")  # fmt: skip
    ax.plot(*MEAN_FIELD_POINT, marker="D", ms=9, color="magenta", mec="k", ls="",
            label="mean field $(0, 1)$")  # fmt: skip
    ax.set_xlim(ex[0], ex[-1])
    ax.set_ylim(ey[0], ey[-1])
    ax.set_xlabel(GAMMA_PRIME_LABEL)
    ax.set_ylabel(GAMMA_LABEL)


def _draw_profiles(ax2, phase: pd.DataFrame, boundary: pd.DataFrame, gps: np.ndarray) -> None:
    """The right panel: ``S_w`` against ``γ`` per ``γ'`` with its band and ``γ*``."""
    styles = s_styles(gps)
    for gp in gps:
        d = phase[phase["gamma_prime"] == gp].sort_values("gamma")
        st = styles[norm_key(gp)]
        ax2.plot(d["gamma"], d["S_w"], "-", marker=st["marker"], color=st["color"], ms=4,
                 label=f"{gp:g}".replace("-", "−"))  # fmt: skip
        ax2.fill_between(d["gamma"], d["S_w_low"], d["S_w_high"], color=st["color"], alpha=0.2,
                         lw=0)  # fmt: skip
        b = boundary[boundary["gamma_prime"] == gp]
        if len(b) and np.isfinite(b["gamma_star"].iloc[0]):
            ax2.axvline(b["gamma_star"].iloc[0], color=st["color"], ls=":", lw=1)
    ax2.axhline(0, color="k", lw=1)
    ax2.set_xlabel(GAMMA_LABEL)
    ax2.set_ylabel(SW_LABEL)
    ax2.set_title(r"$S_w$ against $\gamma$ (band: bootstrap interval; dotted: $\gamma^*$)",
                  fontsize="small")  # fmt: skip
    legend_right(ax2, title=r"$\gamma'$")


def _phase_title(phase: pd.DataFrame) -> str:
    """The suptitle of B1: activation, width range, seeds, grid and bisection cells."""
    n_fine = int((phase["round"] > 0).sum())
    act = f" {phase['activation'].iloc[0]}" if "activation" in phase.columns else ""
    return (
        f"B1: phase diagram of two-layer{act} networks (Luo et al. 2021): "
        f"$m$ = {int(phase['m_min'].min())}…{int(phase['m_max'].max())} "
        f"({int(phase['n_m'].max())} widths), {int(phase['n_seeds'].max())} seeds per cell, "
        f"{len(phase) - n_fine} grid cells + {n_fine} bisection cells"
    )


_REGIME_ORDER = {"linear": 0, "critical": 1, "condensed": 2}
_DEG_TICKS = range(-180, 181, 90)


def plot_condensation(neurons, circle, condensation, out_pdf: str, out_png=None) -> None:
    plotted(build_condensation, neurons, circle, condensation, out_pdf=out_pdf, out_png=out_png)


def build_condensation(neurons: pd.DataFrame, circle: pd.DataFrame,
                       condensation: pd.DataFrame) -> Figure:  # fmt: skip
    """B3: per regime (columns) the neurons ``(angle of w_k, |a_k| ‖w_k‖)`` at initialization
    and at the end of training (first seed), and the learned function on the circle against the
    target; the effective number of directions ``n_eff`` (mean over seeds) in the titles."""
    points = neurons[["s", "gamma", "regime"]].drop_duplicates()
    points = points.assign(o=points["regime"].map(_REGIME_ORDER)).sort_values(["o", "gamma"])
    seed = int(neurons["seed"].min())
    ncol = len(points)
    fig = Figure(figsize=(4.2 * ncol, 9.6), layout="constrained")
    axes = np.atleast_2d(fig.subplots(3, ncol, squeeze=False))
    for j, p in enumerate(points.itertuples()):
        nsub = neurons[(neurons["s"] == p.s) & (neurons["seed"] == seed)]
        summ = condensation[condensation["s"] == p.s]
        for i, stage in enumerate(("init", "final")):
            _draw_neurons(axes[i, j], nsub[nsub["stage"] == stage], summ, stage, p)
        _draw_circle(axes[2, j], circle[(circle["s"] == p.s) & (circle["seed"] == seed)])
    for ax in axes[:, 1:].ravel():
        ax.set_ylabel("")  # the first column's label names the row
    handles = [Line2D([], [], marker="o", ls="", color="tab:red", label="neuron, $a_k > 0$"),
               Line2D([], [], marker="o", ls="", color="tab:blue", label="neuron, $a_k < 0$"),
               *axes[2, 0].get_legend_handles_labels()[0]]  # fmt: skip
    figure_legend(fig, handles, ncol=6)
    m = int(neurons["neuron"].max()) + 1
    # d = 2 is what B3's tables are: condensation.py refuses other input dimensions
    suptitle(fig, f"B3: condensation (Luo et al. 2021): two-layer networks on the unit circle "
                  f"($d$ = 2), $m$ = {m}, $\\gamma'$ = {neurons['gamma_prime'].iloc[0]:g}; "
                  f"neurons of seed {seed}")  # fmt: skip
    return fig


def _draw_neurons(ax, d: pd.DataFrame, summ: pd.DataFrame, stage: str, p) -> None:
    """One regime's neurons at one stage, coloured by the sign of ``a_k``."""
    ax.scatter(np.degrees(d["angle"]), d["amplitude"], s=14,
               c=np.where(d["sign"] > 0, "tab:red", "tab:blue"), alpha=0.8, lw=0)  # fmt: skip
    n_eff = summ.loc[summ["stage"] == stage, "n_eff"]
    ax.set_title(f"{p.regime} ($\\gamma$ = {p.gamma:g}, $s$ = {p.s:g}), {stage}\n"
                 f"$n_\\mathrm{{eff}}$ = {n_eff.mean():.1f} of {int(summ['n_bins'].iloc[0])} "
                 f"bins (mean of {summ['seed'].nunique()} seeds)", fontsize=8)  # fmt: skip
    ax.set_xlim(-180, 180)
    ax.set_xticks(_DEG_TICKS)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(r"orientation of $w_k$ (degrees)")
    ax.set_ylabel(r"$|a_k|\,\|w_k\|$")


def _draw_circle(ax, c: pd.DataFrame) -> None:
    """The learned function on the unit circle against the target and the training points."""
    grid, tr = c[~c["train"]], c[c["train"]]
    deg = np.degrees(grid["angle"])
    ax.plot(deg, grid["target"], "k-", lw=1.5, label="target")
    ax.plot(deg, grid["f_final"], "-", color="tab:orange", lw=1.5, label="learned")
    ax.plot(deg, grid["f_init"], ":", color="0.5", lw=1, label="at init")
    ax.plot(np.degrees(tr["angle"]), tr["target"], "o", ms=4, mfc="w", mec="k",
            label="training points")  # fmt: skip
    ax.set_xlim(-180, 180)
    ax.set_xticks(_DEG_TICKS)
    ax.set_xlabel("input angle on the circle (degrees)")
    ax.set_ylabel("$f(x)$")
    ax.set_title("function on the unit circle", fontsize=8)
