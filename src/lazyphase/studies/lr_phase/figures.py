"""Figure ``lr_phase_portrait``: the (γ0, η/η_crit) portrait of one parameterization (RD
exponent, ``η λ_max(Θ_T/n)`` at the end, diverged region) and the largest stable step against
width per parameterization (docs/conventions.md §7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from lazyphase.studies.lr_phase.analysis import (
    PORTRAIT_LAYER,
    largest_stable,
    portrait,
    stable_slopes,
)
from lazyphase.studies.plotting import figure_legend, fmt_num, legend_right, plotted, suptitle


def plot_lr_phase_portrait(runs, out_pdf: str, out_png: str | None = None) -> None:
    plotted(build_lr_phase_portrait, runs, out_pdf=out_pdf, out_png=out_png)


def build_lr_phase_portrait(runs: pd.DataFrame) -> Figure:
    """Per parameterization a portrait: tiles over (``lr_c = η/η_crit``, ``γ0 = α``) coloured by
    the RD exponent of the first layer, labelled with its RD and ``η λ_max(Θ_T/n)`` at the
    largest width; diverged cells grey and hatched (one colour scale for all). Last panel: the
    largest stable ``η`` against ``m`` per parameterization (log-log), the fitted slope in the
    legend (open markers: a lower bound, no larger ``lr_c`` of the grid diverged)."""
    params = sorted(runs["parameterization"].dropna().unique())
    tables = {p: portrait(runs, p) for p in params}
    fin = pd.concat(tables.values())["slope"].abs().dropna()
    vmax = float(fin.max()) if len(fin) and fin.max() > 0 else 1.0
    norm = TwoSlopeNorm(0.0, -vmax, vmax)
    n_lr = runs["lr_c"].nunique()
    fig = Figure(figsize=((1.0 + 0.6 * n_lr) * len(params) + 4.6, 4.3), layout="constrained")
    axes = fig.subplots(1, len(params) + 1, width_ratios=[1.2] * len(params) + [1.0])
    for ax, param in zip(axes, params):
        mesh = _draw_portrait(ax, tables[param], norm)
        ax.set_title(f"{param}: RD and η·λ_max(Θ_T/n) at m = {int(runs['m'].max())}")
    fig.colorbar(
        mesh, ax=list(axes[:-1]), label=f"RD exponent of {PORTRAIT_LAYER} (slope vs log m)"
    )
    _draw_stable(axes[-1], runs)
    key = Patch(facecolor="0.8", hatch="///", edgecolor="0.4", label="diverged (≥ half the seeds)")
    figure_legend(fig, [key])
    widths = ", ".join(str(int(m)) for m in sorted(runs["m"].unique()))
    guard = ", ".join(sorted(runs["safeguard"].dropna().unique())) if "safeguard" in runs else "n/a"
    suptitle(fig, f"Learning-rate axis: safeguard {guard}, widths m = {widths}, "
                  f"{runs['seed'].nunique()} seeds; η_crit = 2/λ_max(Θ0/n)")  # fmt: skip
    return fig


def _draw_portrait(ax, table: pd.DataFrame, norm: TwoSlopeNorm):
    lrs, alphas = np.sort(table["lr_c"].unique()), np.sort(table["alpha"].unique())
    grid = np.full((len(alphas), len(lrs)), np.nan)
    for row in table.itertuples(index=False):
        i, j = np.searchsorted(alphas, row.alpha), np.searchsorted(lrs, row.lr_c)
        grid[i, j] = np.nan if row.is_diverged else row.slope
        rd = f"{row.rd_wide:.2g}" if row.rd_wide >= 0.01 else f"{row.rd_wide:.0e}"
        label = f"RD {rd}\nηλ {row.eta_lambda:.2f}"
        text = "diverged" if row.is_diverged else label
        dark = not row.is_diverged and abs(row.slope) > 0.6 * norm.vmax
        ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color="w" if dark else "k")
        if row.is_diverged:
            ax.add_patch(_hatch(j, i))
    mesh = ax.imshow(grid, cmap="RdBu_r", norm=norm, origin="lower", aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
    ax.set_yticks(range(len(alphas)), [f"{v:g}" for v in alphas])
    if lrs[0] < 1.0 < lrs[-1]:
        ax.axvline(np.interp(1.0, lrs, range(len(lrs))), color="k", ls="--", lw=0.8)
    ax.set_xlabel("η / η_crit (lr_c; dashed: η = 2/λ_max(Θ0/n))")
    ax.set_ylabel("γ0 (output divisor α)")
    return mesh


def _hatch(j: int, i: int) -> Patch:
    from matplotlib.patches import Rectangle

    return Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.8", hatch="///", edgecolor="0.4")


def _draw_stable(ax, runs: pd.DataFrame) -> None:
    table = largest_stable(runs)
    slopes = stable_slopes(table).set_index("parameterization")["slope"]
    for k, (param, grp) in enumerate(table.groupby("parameterization")):
        slope = fmt_num(slopes.get(param, np.nan))
        color = f"C{k}"
        ax.plot(grp["m"], grp["eta_max"], "-", color=color, label=f"{param}: slope {slope}")
        for bounded in (True, False):
            sel = grp[grp["bounded"] == bounded]
            ax.plot(sel["m"], sel["eta_max"], "o", color=color, mfc=color if bounded else "white")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width m")
    ax.set_ylabel("largest stable η (base step, before m^{-c_l})")
    gamma0 = fmt_num(float(table["alpha"].iloc[0])) if len(table) else "n/a"
    ax.set_title(f"largest non-diverging η against width (γ0 = {gamma0})")
    ax.plot([], [], "o", color="0.4", mfc="white", label="lower bound (grid edge)")
    legend_right(ax, title="parameterization")
