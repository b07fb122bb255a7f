"""A4 ``gram_concentration``: the per-layer Gram at initialization against its limit, one
column of panels per (scheme, activation, depth); the numbers come from ``concentration.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lazyphase.studies.plotting import (
    M_LABEL,
    ROW_KEYS,
    drop_empty_axes,
    figure_legend,
    fmt_num,
    group_keys,
    group_label,
    key_line,
    layer_math,
    layer_order,
    legend_right,
    median_of,
    norm_key,
    panel_grid,
    plotted,
    positive_mask,
    present_cols,
    select_rows,
    suptitle,
)


def plot_gram_concentration(table, summary, out_pdf: str | Path, out_png=None) -> None:
    plotted(build_gram_concentration, table, summary, out_pdf=out_pdf, out_png=out_png)


def build_gram_concentration(table: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """A4 ``gram_concentration``: one column of panels per ``(scheme, activation, depth)``.

    Top row: ``‖G[l](θ0) − K[l]‖_F / ‖K[l]‖_F`` against ``m`` (log–log), one colour per layer
    (median over draws as a line, the draws as faint dots), a dashed reference of slope −½, and
    the fitted slope with its bootstrap interval in the legend (``summary`` of
    :func:`~lazyphase.studies.theta_lazy.concentration.summarize`: columns ``slope, ci_low, ci_high``). Bottom row:
    the fraction of draws with ``λ_min(G[l]) ≥ ¾ λ_S`` against ``m`` (log x), one line per layer
    (``summary['frac_ok']``; recomputed from ``table['ok']`` when ``summary`` lacks it).
    """
    missing = [c for c in ("m", "layer_name", "rel_error") if c not in table.columns]
    if missing:
        raise KeyError(f"table lacks the column(s) {missing}")
    pcols = present_cols(table, ROW_KEYS)
    panels = group_keys(table, pcols) or [()]
    layers = layer_order(table["layer_name"]) or ["(none)"]
    lcolor = dict(zip(layers, sns.color_palette("deep", n_colors=max(len(layers), 1))))
    scols = [c for c in (*pcols, "layer_name") if c in summary.columns]
    fig, axes = panel_grid(2, len(panels), panel_w=5.6, panel_h=3.3)
    for j, pkey in enumerate(panels):
        ax, bx = axes[0, j], axes[1, j]
        sub = select_rows(table, pcols, pkey)
        head = group_label(pcols, pkey, set())
        lam_s = median_of(sub["lambda_S"]) if "lambda_S" in sub.columns else np.nan
        ax.set_title(head, fontsize="small")
        bx.set_title(f"{head}, $\\lambda_S$ = {lam_s:.3g}" if np.isfinite(lam_s) else head,
                     fontsize="small")  # fmt: skip
        if sub.empty or not positive_mask(sub["rel_error"]).any():
            continue  # nothing drawn: both panels are dropped
        _draw_concentration_panels(ax, bx, sub, summary, scols, dict(zip(pcols, pkey)), lcolor)
    n_draws = table["seed"].nunique() if "seed" in table.columns else len(table)
    suptitle(fig, r"A4 per-layer Gram at initialization, $G^{[l]} = (m\beta_l^2/\kappa^2)\,"
                  r"\Theta^{[l]}$, against its limit $K^{[l]}$; top: relative error, line: "
                  f"median over {n_draws} draws, dots: draws, legend: fitted slope and bootstrap "
                  r"interval; bottom: fraction of draws with $\lambda_{\min}(G^{[l]}) \geq "
                  r"\frac{3}{4}\lambda_S$, $\lambda_S = \min_l \lambda_{\min}(K^{[l]})$")  # fmt: skip
    figure_legend(fig, [key_line(r"slope $-\frac{1}{2}$ (reference)", color="0.2", ls="--")])
    return drop_empty_axes(fig)


def _draw_concentration_panels(ax, bx, sub, summary, scols, ctx: dict, lcolor: dict) -> None:
    """One column of A4 (``ctx``: its keys): per layer the error against ``m`` (``ax``) and
    the fraction of good draws (``bx``), the slope −½ reference, the axes."""
    has_frac = "frac_ok" in summary.columns and "m" in summary.columns
    first_medians = []
    m_all = np.sort(pd.to_numeric(sub["m"], errors="coerce").dropna().unique())
    for lname in layer_order(sub["layer_name"]):
        d = sub[sub["layer_name"].astype(str) == lname]
        d = d[positive_mask(d["rel_error"])]
        if d.empty:
            continue
        key = {**ctx, "layer_name": lname}
        fit = select_rows(summary, scols, tuple(norm_key(key[c]) for c in scols))
        color = lcolor.get(lname, "k")
        first_medians.append(_concentration_layer(ax, bx, d, fit, has_frac, color, lname))
    if first_medians and m_all.size >= 2:
        anchor = float(np.exp(np.mean(np.log(first_medians))))
        ref = anchor * np.sqrt(m_all[0] / m_all)
        ax.plot(m_all, ref, ls="--", color="0.2", lw=1.0)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(M_LABEL)
    ax.set_ylabel(r"$\|G^{[l]}(\theta_0) - K^{[l]}\|_F\,/\,\|K^{[l]}\|_F$")
    legend_right(ax, title="layer: slope [interval]")
    if not bx.get_legend_handles_labels()[0]:
        return  # no fraction to show: the bottom panel stays empty and is dropped
    bx.set_xscale("log", base=2)
    bx.set_ylim(-0.05, 1.05)
    bx.axhline(1.0, color="0.6", lw=0.8)
    bx.set_xlabel(M_LABEL)
    bx.set_ylabel(r"fraction with $\lambda_{\min}(G^{[l]}) \geq \frac{3}{4}\lambda_S$")
    legend_right(bx, title="layer")


def _concentration_layer(ax, bx, d, fit, has_frac: bool, color, lname: str) -> float:
    """One layer's draws ``d`` and fit row(s) ``fit`` in both panels; its median error at the
    smallest ``m``."""
    ax.scatter(d["m"], d["rel_error"], s=8, color=color, alpha=0.25, linewidths=0)
    med = d.groupby("m")["rel_error"].median().sort_index()
    label = layer_math(lname)
    if len(fit) and "slope" in fit.columns:
        r = fit.iloc[0]
        label += f": slope {fmt_num(float(r['slope']))}"
        if {"ci_low", "ci_high"} <= set(fit.columns):
            label += f" [{fmt_num(float(r['ci_low']))}, {fmt_num(float(r['ci_high']))}]"
    style = dict(marker="o", ms=3.5, lw=1.4, color=color)
    ax.plot(med.index, med.to_numpy(), label=label, **style)
    if has_frac and len(fit):
        fr = fit.sort_values("m")
        mx, fy = fr["m"].to_numpy(float), fr["frac_ok"].to_numpy(float)
    elif "ok" in d.columns:
        fr = d.groupby("m")["ok"].mean().sort_index()
        mx, fy = fr.index.to_numpy(float), fr.to_numpy(float)
    else:
        mx, fy = np.array([]), np.array([])
    if mx.size:
        bx.plot(mx, fy, label=layer_math(lname), **style)
    return float(med.iloc[0])
