"""A6 ``function_distance``: the trained network against its linearized (kernel) run; per
scheme three rows of panels (``D`` against ``m``, its exponent against ``s``, the test losses),
columns = (activation, depth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lazyphase.studies.plotting import (
    M_LABEL,
    S_LABEL,
    drop_empty_axes,
    fmt_num,
    fmt_s,
    layer_math,
    legend_right,
    norm_key,
    panel_grid,
    plotted,
    positive_mask,
    s_styles,
    select_rows,
    suptitle,
)
from lazyphase.studies.theta_lazy.figures.common import (
    SchemeByArch,
    crossing_band,
    diverged_split,
    exponent_errorbars,
    seed_geomean,
)


def _fdist_vs_m(ax, sub: pd.DataFrame, fexp: pd.DataFrame, styles: dict) -> None:
    """``fdist`` against ``m`` (log–log), one line per ``s`` (geometric mean over the kept
    seeds, dots per seed), legend ``s: slope [ci]`` from ``fexp``."""
    for s_val in sorted({norm_key(v) for v in sub["s"].dropna()}):
        d = select_rows(sub, ["s"], (s_val,))
        d = d[positive_mask(d["fdist"])]
        if d.empty:
            continue
        color = styles[s_val]["color"]
        ax.scatter(d["m"], d["fdist"], s=9, color=color, alpha=0.35, linewidths=0)
        gm = seed_geomean(d, "fdist")
        fit = select_rows(fexp, ["s"], (s_val,))
        label = fmt_s(s_val)
        if len(fit):
            r = fit.iloc[0]
            label += f": {fmt_num(r['slope'])} [{fmt_num(r['ci_low'])}, {fmt_num(r['ci_high'])}]"
        ax.plot(gm.index, gm.to_numpy(), marker=styles[s_val]["marker"], ms=3.5, lw=1.2,
                color=color, label=label)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(M_LABEL)
    ax.set_ylabel(
        r"$D = \|f(\theta_T) - f_\mathrm{lin}(T)\|\,/\,\|f_\mathrm{lin}(T) - f(\theta_0)\|$"
    )
    legend_right(ax, title="$s$: slope [interval]")


def _fdist_exponent_vs_s(ax, fexp: pd.DataFrame, thr: pd.DataFrame) -> None:
    """The ``fdist`` exponent against ``s`` with bootstrap bars, ``s*_f`` (solid, band) and the
    RD-based ``s*`` of every layer (thin dotted) from ``thr``."""
    exponent_errorbars(ax, fexp.sort_values("s"), lw=1.2, color="k", label="$D$ exponent")
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.axvline(0.0, color="k", ls="--", lw=0.9, label="$s = 0$ (theta-lazy boundary)")
    text = []
    if len(thr):
        r = thr.iloc[0]
        sf = float(r.get("s_star_f", np.nan))
        if np.isfinite(sf):
            flo, fhi = float(r["s_star_f_low"]), float(r["s_star_f_high"])
            label = f"$s^*_f$ = {fmt_num(sf)} [{fmt_num(flo)}, {fmt_num(fhi)}]"
            crossing_band(ax, sf, flo, fhi, color="tab:red", label=label)
        else:
            text.append("$s^*_f$: no crossing")
        colors = sns.color_palette("deep", n_colors=max(len(thr), 1))
        for c, (_, t) in zip(colors, thr.iterrows()):
            star = float(t["s_star"])
            name = layer_math(str(t.get("layer_name", "")))
            if np.isfinite(star):
                ax.axvline(
                    star, color=c, ls=":", lw=1.1, label=f"RD $s^*$ ({name}) = {fmt_num(star)}"
                )
            else:
                text.append(f"RD $s^*$ ({name}): no crossing")
        neg = r.get("lazy_side_negative_f", np.nan)
        if isinstance(neg, (bool, np.bool_)):
            text.append("$D$ exponent < 0 for every $s$ > 0: " + ("yes" if neg else "no"))
    if text:
        ax.text(0.02, 0.97, "\n".join(text), transform=ax.transAxes, fontsize="xx-small",
                color="0.2", va="top", ha="left")  # fmt: skip
    ax.set_xlabel(S_LABEL)
    ax.set_ylabel(r"slope of $\log D$ vs $\log m$")
    legend_right(ax)


def _test_losses_vs_s(ax, sub: pd.DataFrame) -> None:
    """Network against kernel predictor: seed-median test loss at the end, at the panel's
    largest ``m``, against ``s``."""
    m_max = sub["m"].max()
    d = sub[sub["m"] == m_max]
    med = d.groupby("s")[["test_loss_final", "test_loss_lin"]].median().sort_index()
    ax.plot(med.index, med["test_loss_final"], marker="o", ms=3.5, color="tab:blue",
            label=r"network $f(\theta_T)$")  # fmt: skip
    ax.plot(med.index, med["test_loss_lin"], marker="s", ms=3.5, ls="--", color="tab:orange",
            label=r"kernel predictor $f_\mathrm{lin}(T)$")  # fmt: skip
    if "test_loss_best" in d.columns:
        best = d.groupby("s")["test_loss_best"].median().sort_index()
        ax.plot(best.index, best, ls=":", lw=1.0, color="tab:blue", label="network, best over t")
    ax.axvline(0.0, color="k", ls="--", lw=0.9)
    ax.set_yscale("log")
    ax.set_xlabel(S_LABEL)
    ax.set_ylabel(f"test loss at the end ($m$ = {m_max}, seed median)")
    legend_right(ax)


def plot_function_distance(runs, fexponents, threshold, out_pdf: str | Path, out_png=None) -> None:
    plotted(build_function_distance, runs, fexponents, threshold, out_pdf=out_pdf,
            out_png=out_png)  # fmt: skip


def build_function_distance(runs: pd.DataFrame, fexponents: pd.DataFrame,
                            threshold: pd.DataFrame) -> Figure:  # fmt: skip
    """A6 ``function_distance``: the trained network against its linearized (kernel) run
    (docs/conventions.md §5). Columns = (activation, depth); for every scheme three rows:
    ``D = ‖f(θ_T) − f_lin(T)‖ / ‖f_lin(T) − f(θ0)‖`` on the test set against ``m`` per ``s``
    (legend: fitted slope and bootstrap interval, :func:`~lazyphase.stats.function_exponents`);
    that exponent against ``s`` with the crossing ``s*_f`` and the RD-based ``s*`` of every
    layer (``threshold``); the test loss of the network and of the kernel predictor against
    ``s`` at the largest ``m``. One row per replica is used (``runs`` repeats it per layer);
    diverged replicas are left out; panels without data are dropped."""
    need = [c for c in ("m", "s", "seed", "fdist", "test_loss_final", "test_loss_lin")
            if c not in runs.columns]  # fmt: skip
    if need:
        raise KeyError(f"runs lacks the column(s) {need}")
    per_rep = runs[runs["layer"] == runs["layer"].min()] if "layer" in runs.columns else runs
    kept, n_div = diverged_split(per_rep)
    facets = SchemeByArch(kept)
    styles = s_styles(kept["s"] if "s" in kept.columns else [])
    fig, axes = panel_grid(3 * len(facets.rows), len(facets.cols), panel_w=6.4, panel_h=3.1)
    for i, j, sub, title, ctx in facets.panels(kept):
        axs = [axes[3 * i + k, j] for k in range(3)]
        for ax in axs:
            ax.set_title(title, fontsize="small")
        if sub.empty or not positive_mask(sub["fdist"]).any():
            continue  # no linearized run: the three panels are dropped
        _function_distance_column(axs, sub, fexponents, threshold, ctx, styles)
    suptitle(fig, "A6 function-space distance $D$ of the trained network to its linearized "
                  f"(kernel) run, test set, end of training; {n_div} diverged replicas left "
                  "out; rows per scheme: $D$ against $m$ (lines: geometric mean over seeds, "
                  "dots: seeds); its exponent against $s$, $s^*_f$ (red) and the RD-based $s^*$ "
                  "per layer (dotted); test losses at the largest $m$. Theta-lazy predicts a "
                  "negative $D$ exponent for every $s$ > 0")  # fmt: skip
    return drop_empty_axes(fig)


def _function_distance_column(axs, sub, fexponents, threshold, ctx: dict, styles) -> None:
    """The three panels of one (scheme, activation, depth): ``D`` against ``m``, its exponent
    against ``s`` (only where one was fitted) and the test losses."""
    fcols = [c for c in ctx if c in fexponents.columns]
    tcols = [c for c in ctx if c in threshold.columns]
    fexp = select_rows(fexponents, fcols, tuple(norm_key(ctx[c]) for c in fcols))
    thr = select_rows(threshold, tcols, tuple(norm_key(ctx[c]) for c in tcols))
    _fdist_vs_m(axs[0], sub, fexp, styles)
    if len(fexp) and np.isfinite(fexp["slope"].to_numpy(float)).any():
        _fdist_exponent_vs_s(axs[1], fexp, thr)
    _test_losses_vs_s(axs[2], sub)
