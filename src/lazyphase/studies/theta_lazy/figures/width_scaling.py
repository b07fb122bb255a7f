"""A1 ``theta_lazy_rd`` and A5 ``gram_drift``: an RD-like quantity against the width ``m``
(log–log), panels rows = (scheme, activation, depth), columns = layer, one series per ``s``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lazyphase.stats import FIT_BY, fit_exponents
from lazyphase.studies.plotting import (
    DIVERGED,
    M_LABEL,
    ROW_KEYS,
    constant_label,
    drop_empty_axes,
    figure_legend,
    fmt_num,
    fmt_s,
    group_keys,
    group_label,
    key_line,
    layer_math,
    layer_order,
    layer_tex,
    legend_right,
    norm_key,
    panel_grid,
    plotted,
    positive_mask,
    present_cols,
    s_styles,
    select_rows,
    suptitle,
    varying_cols,
)
from lazyphase.studies.theta_lazy.figures.common import diverged_mask, diverged_split, seed_geomean

_WIDTH_KEY = (
    key_line("geometric mean over seeds", marker="o", ls="-", ms=3.5),
    key_line("one seed", marker="o", ms=3, alpha=0.5),
    key_line("diverged replica (excluded from means and fits)", marker="x"),
)


def _width_scaling(runs: pd.DataFrame, ycol: str, ylabel, slopes: pd.DataFrame | None,
                   title: str) -> Figure:  # fmt: skip
    """RD-like quantity ``ycol`` against ``m`` (log–log); rows = (scheme, activation, depth),
    columns = layer name (a panel only where that layer exists and has data), one colour and
    marker per ``s``; geometric mean over non-diverged seeds (line), seeds (dots), diverged
    replicas ('x'); per-panel legend ``s: slope`` from ``slopes`` on the right of the panel.
    ``ylabel(layer_name, rows)`` gives the y label."""
    missing = [c for c in ("m", "s", "layer_name", ycol) if c not in runs.columns]
    if missing:
        raise KeyError(f"runs lacks the column(s) {missing}")
    rcols = present_cols(runs, ROW_KEYS)
    rows = group_keys(runs, rcols) or [()]
    layers = layer_order(runs["layer_name"]) or ["(none)"]
    styles = s_styles(runs["s"])
    varying = varying_cols(runs, rcols)
    n_div = diverged_split(runs)[1]
    labels = _SlopeLabels(runs, slopes)
    # the panels' right-hand legends need about 1.4 inches beside each panel
    fig, axes = panel_grid(len(rows), len(layers), panel_w=5.6, panel_h=3.0)
    for i, rkey in enumerate(rows):
        for j, lname in enumerate(layers):
            ax = axes[i, j]
            sub = select_rows(runs, rcols, rkey)
            sub = sub[sub["layer_name"].astype(str) == lname]
            head = ": ".join(x for x in (group_label(rcols, rkey, varying), layer_math(lname)) if x)
            ax.set_title(head, fontsize="small")
            ctx = dict(zip([*rcols, "layer_name"], (*rkey, lname)))
            _draw_width_panel(ax, sub, ycol, ylabel(lname, sub), styles, labels, ctx)
    const = constant_label(runs, rcols)
    suptitle(fig, f"{title}{' (' + const + ')' if const and varying else ''}; "
                  f"{n_div} diverged replicas")  # fmt: skip
    figure_legend(fig, list(_WIDTH_KEY))
    return drop_empty_axes(fig)


class _SlopeLabels:
    """Legend labels ``s = …: slope`` of :func:`_width_scaling` from a table of slopes (the
    first slope of each ``(scheme, activation, depth, layer_name, s)`` key it has)."""

    def __init__(self, runs: pd.DataFrame, slopes: pd.DataFrame | None) -> None:
        self.given = slopes is not None
        keys = [c for c in (*ROW_KEYS, "layer_name", "s") if self.given and c in slopes]
        self.keys = [c for c in keys if c in runs.columns]
        self.lookup: dict[tuple, float] = {}
        if self.given and len(slopes) and "slope" in slopes.columns:
            for r in slopes.itertuples(index=False):
                k = tuple(norm_key(getattr(r, c)) for c in self.keys)
                self.lookup.setdefault(k, float(r.slope))

    def __call__(self, ctx: dict, s_val) -> str:
        ctx = {**ctx, "s": s_val}
        slope = self.lookup.get(tuple(norm_key(ctx[c]) for c in self.keys), np.nan)
        return f"{fmt_s(s_val)}" + (f": {fmt_num(slope)}" if self.given else "")

    @property
    def title(self) -> str:
        return "$s$: fitted slope" if self.given else "$s$"


def _draw_width_panel(ax, sub, ycol, ylabel: str, styles, labels: _SlopeLabels, ctx) -> None:
    """One panel of :func:`_width_scaling`: the rows ``sub`` of one layer, one series per ``s``
    (nothing drawn, so the panel is dropped, when no value is positive)."""
    if sub.empty or not positive_mask(sub[ycol]).any():
        return
    for s_val in sorted({norm_key(v) for v in sub["s"].dropna()}):
        d = select_rows(sub, ["s"], (s_val,))
        d = d[positive_mask(d[ycol])]
        _width_series(ax, d, ycol, styles[s_val], labels(ctx, s_val))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(M_LABEL)
    ax.set_ylabel(ylabel)
    legend_right(ax, title=labels.title)


def _width_series(ax, d: pd.DataFrame, ycol: str, style: dict, label: str) -> None:
    """Diverged replicas ('x'), the other seeds (dots) and their geometric mean over seeds per
    ``m`` (line with the series' marker, labelled)."""
    color = style["color"]
    bad = diverged_mask(d)
    good = d[~bad]
    if bad.any():
        ax.scatter(d.loc[bad, "m"], d.loc[bad, ycol], marker="x", s=28, color=color, linewidths=1.0)
    if good.empty:
        return
    ax.scatter(good["m"], good[ycol], s=9, color=color, alpha=0.35, linewidths=0)
    gm = seed_geomean(good, ycol)
    ax.plot(gm.index, gm.to_numpy(), marker=style["marker"], ms=4, lw=1.3, color=color,
            label=label)  # fmt: skip


def _rd_label(lname: str, sub: pd.DataFrame) -> str:
    return rf"$\mathrm{{RD}}({layer_tex(lname)})$ at the end of training"


def _gram_label(lname: str, sub: pd.DataFrame) -> str:
    """``sup_t ‖G[l](t) − G[l](0)‖_F / ‖G[l](0)‖_F`` with ``l`` the layer's index (``L + 1``
    for the output layer, docs/conventions.md), read from the ``layer`` column."""
    if "layer" in sub.columns and sub["layer"].notna().any():
        g = f"G^{{[{int(sub['layer'].dropna().iloc[0])}]}}"
    else:
        g = f"G^{{[{layer_tex(lname)}]}}"
    return rf"$\sup_t\,\|{g}(t) - {g}(0)\|_F\,/\,\|{g}(0)\|_F$"


def build_theta_lazy_rd(runs: pd.DataFrame, exponents: pd.DataFrame) -> Figure:
    """A1 ``theta_lazy_rd``: ``RD_final(W[l])`` against ``m`` on log–log axes, one line per
    ``s`` (geometric mean over non-diverged seeds, dots per seed, 'x' for diverged replicas and
    their count in the title), panels rows = (scheme, activation, depth), columns = layer; the
    legends give the fitted slopes of ``exponents`` (:func:`~lazyphase.stats.fit_exponents`)."""
    return _width_scaling(
        runs, "rd_final", _rd_label, exponents,
        r"A1 relative displacement $\mathrm{RD}(W) = \|W(T) - W(0)\|_F\,/\,\|W(0)\|_F$ "
        "against width",
    )  # fmt: skip


def plot_theta_lazy_rd(runs, exponents, out_pdf: str | Path, out_png=None) -> None:
    plotted(build_theta_lazy_rd, runs, exponents, out_pdf=out_pdf, out_png=out_png)


def build_gram_drift(runs: pd.DataFrame) -> Figure:
    """A5 ``gram_drift``: ``sup_t ‖G[l](t) − G[l](0)‖_F / ‖G[l](0)‖_F`` against ``m``
    (log–log), one line per ``s``, panels as in A1; legend slopes fitted here with
    :func:`~lazyphase.stats.fit_exponents` (``y = gram_drift``, no bootstrap)."""
    by = present_cols(runs, FIT_BY)
    slopes = None
    if {"m", "seed", "gram_drift"} <= set(runs.columns) and by and len(runs):
        slopes, _ = fit_exponents(
            runs,
            y="gram_drift",
            by=by,
            n_boot=0,
            exclude_status=(DIVERGED,) if "status" in runs.columns else (),
        )
    return _width_scaling(runs, "gram_drift", _gram_label, slopes,
                          "A5 Gram drift against width (→ 0 on the lazy side)")  # fmt: skip


def plot_gram_drift(runs, out_pdf: str | Path, out_png=None) -> None:
    plotted(build_gram_drift, runs, out_pdf=out_pdf, out_png=out_png)
