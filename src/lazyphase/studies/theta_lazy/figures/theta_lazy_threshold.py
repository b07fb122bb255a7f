"""A2 ``theta_lazy_threshold``: the fitted RD exponent against ``s`` per layer with its
bootstrap interval and the crossing ``s*``, panels rows = scheme, columns = (activation, depth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lazyphase.studies.plotting import (
    S_LABEL,
    drop_empty_axes,
    figure_legend,
    fmt_num,
    key_line,
    layer_math,
    layer_order,
    legend_right,
    norm_key,
    panel_grid,
    plotted,
    select_rows,
    suptitle,
)
from lazyphase.studies.theta_lazy.figures.common import (
    SchemeByArch,
    crossing_band,
    exponent_errorbars,
)


def plot_theta_lazy_threshold(exponents, thresholds, out_pdf: str | Path, out_png=None) -> None:
    plotted(build_theta_lazy_threshold, exponents, thresholds, out_pdf=out_pdf, out_png=out_png)


def build_theta_lazy_threshold(exponents: pd.DataFrame, thresholds: pd.DataFrame) -> Figure:
    """A2 ``theta_lazy_threshold``: fitted RD exponent against ``s`` with its bootstrap interval
    (error bars), hue = layer, panels rows = scheme, columns = (activation, depth); lines at
    exponent 0 and at ``s = 0`` (the theta-lazy boundary), and per layer ``s*`` (dotted) with its
    interval (shaded) from :func:`~lazyphase.stats.thresholds`, or "no crossing"."""
    facets = SchemeByArch(exponents)
    layers = layer_order(exponents["layer_name"]) if "layer_name" in exponents else ["(all)"]
    colors = sns.color_palette("deep", n_colors=max(len(layers), 1))
    lcolor = dict(zip(layers, colors))
    tcols = [c for c in (*facets.rcols, *facets.ccols, "layer_name") if c in thresholds.columns]
    s_all = pd.to_numeric(exponents.get("s", pd.Series(dtype=float)), errors="coerce")
    span = float(s_all.max() - s_all.min()) if s_all.notna().any() else 1.0
    span = span if span > 0 else 1.0

    fig, axes = panel_grid(len(facets.rows), len(facets.cols), panel_w=6.4, panel_h=3.4)
    for i, j, sub, title, ctx in facets.panels(exponents):
        axes[i, j].set_title(title, fontsize="small")
        _draw_threshold_panel(axes[i, j], sub, thresholds, tcols, ctx, lcolor, span)
    suptitle(fig, "A2 regime exponent against $s$ (< 0 lazy, ≈ 0 critical, > 0 condensed); "
                  "bars: bootstrap interval over seeds; dotted line and band: crossing $s^*$ "
                  "and its bootstrap interval")  # fmt: skip
    figure_legend(fig, [key_line("$s = 0$ (theta-lazy boundary)", color="k", ls="--")])
    return drop_empty_axes(fig)


def _draw_threshold_panel(ax, sub, thresholds, tcols, ctx: dict, lcolor, span: float) -> None:
    """One panel of A2 (``ctx``: its row and column keys): per layer the exponents with error
    bars and the crossing ``s*`` of ``thresholds`` (matched on ``tcols``)."""
    if sub.empty or not np.isfinite(sub["slope"].to_numpy(float)).any():
        return  # nothing drawn: the panel is dropped
    present = layer_order(sub["layer_name"]) if "layer_name" in sub else ["(all)"]
    no_cross = []
    for k, lname in enumerate(present):
        d = sub[sub["layer_name"].astype(str) == lname] if "layer_name" in sub else sub
        color = lcolor.get(lname, "k")
        dx = (k - (len(present) - 1) / 2) * 0.012 * span
        exponent_errorbars(ax, d.sort_values("s"), dx=dx, lw=1.1, color=color,
                           label=f"{layer_math(lname)}")  # fmt: skip
        key = {**ctx, "layer_name": lname}
        tr = select_rows(thresholds, tcols, tuple(norm_key(key[c]) for c in tcols))
        if not _crossing_marker(ax, tr, color, lname):
            no_cross.append(layer_math(lname))
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.axvline(0.0, color="k", ls="--", lw=1.0)
    if no_cross:
        ax.text(0.02, 0.03, "no crossing: " + ", ".join(no_cross), transform=ax.transAxes,
                fontsize="x-small", color="0.25", va="bottom", ha="left")  # fmt: skip
    ax.set_xlabel(S_LABEL)
    ax.set_ylabel(r"RD exponent: slope of $\log\mathrm{RD}$ vs $\log m$")
    legend_right(ax)


def _crossing_marker(ax, tr: pd.DataFrame, color, lname: str) -> bool:
    """Draw the crossing ``s*`` of threshold row ``tr`` (dotted) and its interval (band);
    ``False`` when there is none."""
    star = float(tr["s_star"].iloc[0]) if len(tr) else np.nan
    if not np.isfinite(star):
        return False
    slo, shi = (float(tr[c].iloc[0]) for c in ("s_star_low", "s_star_high"))
    label = f"$s^*$ ({layer_math(lname)}) = {fmt_num(star)}\n{_interval_text(tr.iloc[0], slo, shi)}"
    crossing_band(ax, star, slo, shi, color=color, label=label, ls=":")
    return True


def _interval_text(row: pd.Series, lo: float, hi: float) -> str:
    """``[lo, hi] (k% of resamples cross)``, or why there is no interval (the threshold note)."""
    frac = float(row.get("frac_boot_cross", np.nan))
    share = f", {100 * frac:.0f}% cross" if np.isfinite(frac) else ""
    if np.isfinite(lo) and np.isfinite(hi):
        return f"[{fmt_num(lo)}, {fmt_num(hi)}{share}]"
    lo_t = (
        fmt_num(lo) if np.isfinite(lo) else "below grid" if "below" in str(row.get("note")) else "?"
    )
    hi_t = (
        fmt_num(hi) if np.isfinite(hi) else "above grid" if "above" in str(row.get("note")) else "?"
    )
    if "no interval" in str(row.get("note")):
        return "(no interval: too few seeds)"
    return f"[{lo_t}, {hi_t}{share}]"
