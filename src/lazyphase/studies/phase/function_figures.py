"""Figure B4: where the network leaves its kernel — the RD exponent and the function-space (D)
exponents side by side, from the ``phase`` and ``boundary`` tables of B1
(:func:`lazyphase.studies.phase.analysis.phase_table`) or of B2 (``deep_phase_table``: told
apart by its ``gamma_h`` column).

Every exponent is a slope against ``log m`` with the same sign convention: ``< 0`` the quantity
vanishes as the width grows (the parameters stay, the network stays at its kernel), ``> 0`` it
grows. One diverging colour scale for all panels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from lazyphase.studies.phase.analysis import (
    GAMMA_LABEL,
    GAMMA_PRIME_LABEL,
    luo_boundary,
    scaling_boundary,
)
from lazyphase.studies.plotting import figure_legend, key_line, layer_math, plotted, suptitle

_CMAP = "RdBu_r"
#: The exponents drawn: phase column → panel title.
_D_PANELS = {
    "fdist_slope": "D at equal time: $\\|f - f_{lin}(T)\\|/\\|f_{lin}(T) - f_0\\|$",
    "fdist_conv_slope": "D converged: $\\|f - f_{lin}(\\infty)\\|/\\|f_{lin}(\\infty) - f_0\\|$",
}
#: Boundary column → (label, marker) of the measured boundaries.
_STARS = {"rd": ("RD boundary", "o"), "f": ("D boundary, equal time", "^"),
          "fconv": ("D boundary, converged", "D")}  # fmt: skip
_B2_X = r"$\gamma_h$ (hidden-layer std exponent)"
_B2_Y = r"$s = \log\kappa\,/\log m$"


def plot_function_phase_diagram(phase, boundary, out_pdf: str, out_png=None) -> None:
    plotted(build_function_phase_diagram, phase, boundary, out_pdf=out_pdf, out_png=out_png)


def build_function_phase_diagram(phase: pd.DataFrame, boundary: pd.DataFrame) -> Figure:
    """B1: one row, panels RD(W1) | D equal time | D converged over ``(γ', γ)``, with the three
    measured boundaries (bootstrap bars) and Luo's line and the scaling line. B2: one row per
    (activation, depth), panels RD of every layer | D equal time | D converged over
    ``(γ_h, s)``, each layer's RD boundary on its panel, the D boundaries on every panel, and
    ``s = 0`` (theta-lazy: linear above)."""
    deep = "gamma_h" in phase.columns
    cols = ["slope"] if deep else ["S_w"]
    vals = [phase[c] for c in (*_D_PANELS, *cols) if c in phase]
    v = pd.concat(vals).to_numpy(float)
    v = v[np.isfinite(v)]
    vmax = float(np.abs(v).max()) if v.size and np.abs(v).max() > 0 else 1.0
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    fig = _deep(phase, boundary, norm) if deep else _two_layer(phase, boundary, norm)
    handles = [key_line(lab, marker=mk, color="k") for lab, mk in _STARS.values()]
    if not deep:
        handles += [key_line("Luo et al.: γ = 1 + max(γ', 0)", color="k"),
                    key_line("scaling: γ = 1 + 2 max(γ', 0)", color="0.4", ls="--")]  # fmt: skip
    else:
        handles.append(key_line("s = 0 (theta-lazy: linear above)", color="0.4", ls=":"))
    figure_legend(fig, handles)
    suptitle(fig, "Where the network leaves its kernel: exponents against log m (blue < 0: "
             "vanishes with width, red > 0: grows); seed-bootstrap intervals on the boundaries")
    return fig


def _colorbar(fig: Figure, mesh, axes) -> None:
    fig.colorbar(mesh, ax=axes, label="exponent: slope against $\\log m$", shrink=0.9)


def _cells(ax, x, y, v, norm):
    """The grid cells as coloured squares (bisection cells included), value printed."""
    ok = np.isfinite(np.asarray(v, float))
    mesh = ax.scatter(x[ok], y[ok], c=np.asarray(v, float)[ok], cmap=_CMAP, norm=norm,
                      marker="s", s=260, edgecolors="0.5", linewidths=0.4)  # fmt: skip
    ax.scatter(x[~ok], y[~ok], marker="x", color="0.5", s=30)
    for xi, yi, vi in _labelled(np.asarray(x, float)[ok], np.asarray(y, float)[ok],
                                np.asarray(v, float)[ok]):  # fmt: skip
        ax.annotate(f"{vi:.2f}", (xi, yi), ha="center", va="center", fontsize=5)
    return mesh


def _labelled(x: np.ndarray, y: np.ndarray, v: np.ndarray) -> list[tuple[float, float, float]]:
    """The cells whose value is printed: per column, none closer in ``y`` than 0.7 of the grid's
    usual spacing to one already printed, so that bisection cells do not print over their
    neighbours (their colour still shows)."""
    counts = pd.Series(np.round(np.diff(np.unique(y)), 6)).value_counts()
    repeated = counts[counts >= 2].index  # the grid's step recurs; bisection steps rarely do
    gap = 0.7 * float(max(repeated, default=counts.index.max() if len(counts) else 0.0))
    out: list[tuple[float, float, float]] = []
    last: dict[float, float] = {}
    for i in np.lexsort((y, x)):
        if abs(y[i] - last.get(x[i], -np.inf)) >= gap:
            out.append((x[i], y[i], v[i]))
            last[x[i]] = y[i]
    return out


def _stars(ax, b: pd.DataFrame, x: str, star: str, tags) -> None:
    """The measured boundaries ``<star>_<tag>`` (``tag = ''`` for RD) with their intervals."""
    for tag in tags:
        col = star if tag == "rd" else f"{star}_{tag}"
        if col not in b:
            continue
        d = b[[x, col, f"{col}_low", f"{col}_high"]].drop_duplicates().dropna(subset=[col])
        if d.empty:
            continue
        err = np.vstack([d[col] - d[f"{col}_low"], d[f"{col}_high"] - d[col]])
        ax.errorbar(d[x], d[col], yerr=np.nan_to_num(np.abs(err)), fmt=_STARS[tag][1], color="k",
                    mfc="gold", ms=6, capsize=2, lw=1)  # fmt: skip


def _two_layer(phase: pd.DataFrame, boundary: pd.DataFrame, norm) -> Figure:
    panels = {"rd": "RD($W^{[1]}$): $-S_w$", **_D_PANELS}
    fig = Figure(figsize=(4.2 * len(panels) + 1.5, 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True)
    gp = np.sort(phase["gamma_prime"].unique())
    line_x = np.linspace(gp.min() - 0.1, gp.max() + 0.1, 50)
    mesh = None
    for ax, (col, title) in zip(axes, panels.items()):
        v = -phase["S_w"] if col == "rd" else phase.get(col, pd.Series(np.nan, phase.index))
        mesh = _cells(ax, phase["gamma_prime"].to_numpy(), phase["gamma"].to_numpy(), v, norm)
        ax.plot(line_x, luo_boundary(line_x), color="k", lw=1)
        ax.plot(line_x, scaling_boundary(line_x), color="0.4", lw=1, ls="--")
        _stars(ax, boundary, "gamma_prime", "gamma_star", _STARS)
        ax.set(title=title, xlabel=GAMMA_PRIME_LABEL)
    axes[0].set_ylabel(GAMMA_LABEL)
    _colorbar(fig, mesh, list(axes))
    return fig


def _deep(phase: pd.DataFrame, boundary: pd.DataFrame, norm) -> Figure:
    groups = phase[["activation", "depth"]].drop_duplicates().sort_values(["depth", "activation"])
    ncols = int(groups["depth"].max()) + 1 + len(_D_PANELS)
    fig = Figure(figsize=(3.6 * ncols + 1.5, 3.8 * len(groups) + 1.2), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(groups), ncols, squeeze=False))
    mesh, live = None, []
    for i, (act, depth) in enumerate(groups.itertuples(index=False)):
        sub = phase[(phase["activation"] == act) & (phase["depth"] == depth)]
        bsub = boundary[(boundary["activation"] == act) & (boundary["depth"] == depth)]
        names = sub.drop_duplicates("layer").sort_values("layer")["layer_name"].tolist()
        panels = [(f"RD({layer_math(n)})", n, "slope") for n in names]
        panels += [(t, names[0], c) for c, t in _D_PANELS.items()]
        for j in range(ncols):
            ax = axes[i, j]
            if j >= len(panels):
                ax.remove()
                continue
            title, name, col = panels[j]
            cells = sub[sub["layer_name"] == name]
            v = cells.get(col, pd.Series(np.nan, cells.index))
            mesh = _cells(ax, cells["gamma_h"].to_numpy(), cells["s"].to_numpy(), v, norm)
            ax.axhline(0.0, color="0.4", ls=":", lw=1)
            tags = ("rd", "f", "fconv") if col == "slope" else ("f", "fconv")
            _stars(ax, bsub[bsub["layer_name"] == name], "gamma_h", "s_star", tags)
            ax.set(title=f"{act}, L = {depth}: {title}", xlabel=_B2_X, ylabel=_B2_Y)
            live.append(ax)
    _colorbar(fig, mesh, live)
    return fig
