"""Figure B2: the deep phase diagram, one heatmap per layer, from the ``phase`` and
``boundary`` tables of :func:`lazyphase.studies.deep_phase.analysis.deep_phase_table`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lazyphase.studies.deep_phase.analysis import GAMMA_H_LABEL, S_LABEL, SLOPE_LABEL
from lazyphase.studies.plotting import (
    figure_legend,
    label_tile,
    layer_math,
    plotted,
    suptitle,
    tile_color,
    tile_edges,
)

#: Panels with more tiles than this show colours without numbers.
MAX_LABELLED_TILES = 42
#: Blue: negative exponent (RD → 0, linear); red: positive (condensed).
_CMAP = "RdBu_r"


def plot_deep_phase_diagram(phase, boundary, out_pdf: str, out_png: str | None = None) -> None:
    plotted(build_deep_phase_diagram, phase, boundary, out_pdf=out_pdf, out_png=out_png)


def build_deep_phase_diagram(phase: pd.DataFrame, boundary: pd.DataFrame) -> Figure:
    """B2: per (activation, depth) a row, per layer a heatmap of the regime exponent over
    ``(γ_h, s)`` (grid cells as tiles, bisection cells as squares, hatched where the fit is poor
    or a replica did not converge), the measured boundary ``s*`` of that layer per ``γ_h`` with
    its bootstrap interval, and the line ``s = 0`` (theta-lazy: linear above it). One colour
    scale and one colour bar for every panel (they are compared); no axes for the layers a
    depth does not have."""
    groups = phase[["activation", "depth"]].drop_duplicates().sort_values(["depth", "activation"])
    ncols = int(groups["depth"].max()) + 1
    fin = phase["slope"][np.isfinite(phase["slope"])]
    vmax = float(np.nanmax(np.abs(fin))) if len(fin) else 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-(vmax or 1.0), vmax=vmax or 1.0)
    nrows = len(groups)
    fig = Figure(figsize=(4.3 * ncols + 1.2, 3.9 * nrows + 1.3), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    mesh, live = None, []
    for i, (act, depth) in enumerate(groups.itertuples(index=False)):
        sub = phase[(phase["activation"] == act) & (phase["depth"] == depth)]
        bsub = boundary[(boundary["activation"] == act) & (boundary["depth"] == depth)]
        for j in range(ncols):
            ax = axes[i, j]
            cells = sub[sub["layer"] == j + 1]
            if j > depth or cells.empty:
                ax.remove()  # the depth has no such layer: no empty panel
                continue
            mesh = _draw_layer(ax, cells, bsub[bsub["layer"] == j + 1], norm)
            live.append(ax)
            ax.set_title(f"{act}, $L$ = {depth}: layer {layer_math(cells['layer_name'].iloc[0])}",
                         fontsize=9)  # fmt: skip
            ax.set_xlabel(GAMMA_H_LABEL)
            ax.set_ylabel(S_LABEL if j == 0 else "")
    if mesh is not None:
        fig.colorbar(mesh, ax=live, label=SLOPE_LABEL, shrink=0.8, pad=0.01)
    figure_legend(fig, _legend_handles(), ncol=3)
    suptitle(fig, _title(phase))
    return fig


def _draw_layer(ax, cells: pd.DataFrame, bnd: pd.DataFrame, norm):
    """One layer's heatmap, its bisection cells, boundary points and the line ``s = 0``."""
    coarse = cells[cells["round"] == 0]
    ghs = np.sort(coarse["gamma_h"].unique())
    ss = np.sort(coarse["s"].unique())
    ex, ey = tile_edges(ghs), tile_edges(ss)
    grid = np.full((len(ss), len(ghs)), np.nan)
    for row in coarse.itertuples():
        grid[np.searchsorted(ss, row.s), np.searchsorted(ghs, row.gamma_h)] = row.slope
    cmap = colormaps[_CMAP]
    mesh = ax.pcolormesh(ex, ey, grid, cmap=cmap, norm=norm, shading="flat")
    # numbers only while they fit (paper-scale grids: colour, hatching and phase.csv)
    label = len(ghs) * len(ss) <= MAX_LABELLED_TILES
    for row in coarse.itertuples():
        i, j = np.searchsorted(ss, row.s), np.searchsorted(ghs, row.gamma_h)
        txt = "n/a" if not np.isfinite(row.slope) else f"{row.slope:+.2f}".replace("-", "−")
        if row.n_converged < row.n_replicas:
            txt += f"\n{int(row.n_converged)}/{int(row.n_replicas)} conv."
        # top left of the tile (label_tile): the line s = 0 crosses the centre, and the boundary
        # points and bisection squares sit on the tile's vertical mid-line
        label_tile(ax, (ex[j], ex[j + 1]), (ey[i], ey[i + 1]), txt if label else "",
                   hatched=bool(row.hatched), rgba=tile_color(cmap, norm, row.slope))  # fmt: skip
    fine = cells[cells["round"] > 0]
    if len(fine):
        ax.scatter(fine["gamma_h"], fine["s"], c=fine["slope"], cmap=_CMAP, norm=norm,
                   marker="s", s=40, edgecolors=np.where(fine["hatched"], "0.4", "k"),
                   linewidths=np.where(fine["hatched"], 1.8, 0.8), zorder=3)  # fmt: skip
    ax.axhline(0.0, color="k", ls="--", lw=1.5, zorder=2)
    ok = bnd[np.isfinite(bnd["s_star"])]
    if len(ok):
        ax.errorbar(
            ok["gamma_h"], ok["s_star"],
            yerr=[(ok["s_star"] - ok["s_star_low"]).clip(lower=0).fillna(0),
                  (ok["s_star_high"] - ok["s_star"]).clip(lower=0).fillna(0)],
            fmt="o", color="gold", mec="k", ms=6, capsize=3, ecolor="k", zorder=4,
        )  # fmt: skip
    ax.set_xlim(ex[0], ex[-1])
    ax.set_ylim(ey[0], ey[-1])
    ax.set_xticks(ghs[:: max(1, int(np.ceil(len(ghs) / 5)))])
    ax.set_yticks(ss[:: max(1, int(np.ceil(len(ss) / 8)))])
    return mesh


def _legend_handles() -> list:
    return [
        Line2D([], [], color="k", ls="--", lw=1.5,
               label=r"$s = 0$ (theta-lazy: every layer linear above, for every $\gamma_h$)"),
        Line2D([], [], marker="o", color="gold", mec="k", ls="",
               label="measured boundary $s^*$ of the layer (bootstrap interval)"),
        Line2D([], [], marker="s", color="w", mec="k", ls="", label="bisection cells"),
        Patch(facecolor="w", edgecolor="k", hatch="///",
              label="hatched: $R^2$ < r2_min, or a replica not converged (max_steps / diverged)"),
        Patch(facecolor="#2166ac", label="exponent < 0: linear (lazy)"),
        Patch(facecolor="#b2182b", label="exponent ≥ 0: condensed"),
    ]  # fmt: skip


def _title(phase: pd.DataFrame) -> str:
    n_fine = int(phase.loc[phase["round"] > 0, ["activation", "depth", "gamma_h", "s"]]
                 .drop_duplicates().shape[0])  # fmt: skip
    n_cells = phase[["activation", "depth", "gamma_h", "s"]].drop_duplicates().shape[0]
    return (
        f"B2: deep phase diagram, regime exponent of every layer over $(\\gamma_h, s)$, "
        f"$\\kappa = m^s$ fixed by the first and output layer: $m$ = {int(phase['m_min'].min())}…"
        f"{int(phase['m_max'].max())} ({int(phase['n_m'].max())} widths), "
        f"{int(phase['n_seeds'].max())} seeds, {n_cells - n_fine} grid cells + {n_fine} "
        f"bisection cells; ≤ {int(phase['max_final_step'].max())} steps"
    )


def plot_deep_condensation(deep_condensation, out_pdf: str, out_png: str | None = None) -> None:
    plotted(build_deep_condensation, deep_condensation, out_pdf=out_pdf, out_png=out_png)


def build_deep_condensation(table: pd.DataFrame) -> Figure:
    """B6: ``n_eff(end)/n_eff(init)`` of every hidden layer's incoming weights against ``s``,
    one line per ``γ_h`` at the largest width (seeds as points, their median as the line), one
    panel per layer and row per (activation, depth); dotted: 1 (no change)."""
    groups = table[["activation", "depth"]].drop_duplicates().sort_values(["depth", "activation"])
    ncols = int(groups["depth"].max())
    fig = Figure(figsize=(4.0 * ncols + 1.0, 3.6 * len(groups) + 1.0), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(groups), ncols, squeeze=False, sharey=True))
    ghs = sorted(table["gamma_h"].unique())
    colors = dict(zip(ghs, colormaps["viridis"](np.linspace(0.0, 0.85, len(ghs)))))
    for i, (act, depth) in enumerate(groups.itertuples(index=False)):
        sub = table[(table["activation"] == act) & (table["depth"] == depth)]
        m = int(sub["m"].max())
        sub = sub[sub["m"] == m]
        for j in range(ncols):
            ax = axes[i, j]
            cells = sub[sub["layer"] == j + 1]
            if cells.empty:
                ax.remove()
                continue
            for gh, d in cells.groupby("gamma_h"):
                ax.scatter(d["s"], d["n_eff_ratio"], color=colors[gh], s=10, alpha=0.4)
                med = d.groupby("s")["n_eff_ratio"].median()
                ax.plot(med.index, med.to_numpy(), color=colors[gh], marker="o", ms=4,
                        label=f"γ_h = {gh:g}")  # fmt: skip
            ax.axhline(1.0, color="0.4", ls=":", lw=1)
            ax.set(yscale="log", title=f"{act}, L = {depth}, m = {m}: {layer_math(f'W{j + 1}')}",
                   xlabel=S_LABEL, ylabel="$n_{eff}$(end) / $n_{eff}$(init)")  # fmt: skip
    figure_legend(fig)
    suptitle(fig, "Condensation at depth: effective number of directions of each hidden "
             "layer's incoming weights, end over init (< 1: the neurons align)")
    return fig
