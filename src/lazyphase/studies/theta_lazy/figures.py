"""Figures A1–A6 of the catalog (docs/experiments.md §A) from the aggregated tables.

Every ``build_*`` returns the figure, its ``plot_*`` writes a PDF and a PNG (``out_png=None``:
``out_pdf`` is taken as a path stem and ``.pdf``/``.png`` are appended or substituted). Figures are built on ``matplotlib.figure.Figure``
without pyplot, so no backend, global figure registry or global style is touched; seaborn gives
the style (as a context manager) and the palettes. Panels are facets of
``(scheme, activation, depth)`` × layer (A1, A5) or scheme × ``(activation, depth)`` (A2, A3);
a panel without data is not drawn (the figure keeps its grid, so layers stay in columns), NaN
values are skipped. Numbers that differ per panel (fitted slopes, gaps) are in a legend on the
panel's right; conventions shared by all panels are in one legend below the figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lazyphase.stats import FIT_BY, fit_exponents
from lazyphase.studies.plotting import (
    DIVERGED,
    M_LABEL,
    ROW_KEYS,
    S_LABEL,
    T_LABEL,
    constant_label,
    drop_empty_axes,
    figure_legend,
    fmt_num,
    fmt_s,
    fmt_sci,
    group_keys,
    group_label,
    key_line,
    layer_math,
    layer_order,
    layer_tex,
    legend_right,
    median_of,
    norm_key,
    panel_grid,
    plotted,
    positive_mask,
    present_cols,
    replica_count,
    s_styles,
    select_rows,
    suptitle,
    varying_cols,
)

# ----------------------------------------------------------------------------- A1 / A5
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
    status = runs["status"] if "status" in runs.columns else pd.Series("", index=runs.index)
    n_div = replica_count(runs[status == DIVERGED]) if (status == DIVERGED).any() else 0
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
    bad = d["status"] == DIVERGED if "status" in d.columns else pd.Series(False, index=d.index)
    good = d[~bad]
    if bad.any():
        ax.scatter(d.loc[bad, "m"], d.loc[bad, ycol], marker="x", s=28, color=color, linewidths=1.0)
    if good.empty:
        return
    ax.scatter(good["m"], good[ycol], s=9, color=color, alpha=0.35, linewidths=0)
    gm = np.exp(np.log(good[ycol].astype(float)).groupby(good["m"]).mean())
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


# ----------------------------------------------------------------------------- A2
def plot_theta_lazy_threshold(exponents, thresholds, out_pdf: str | Path, out_png=None) -> None:
    plotted(build_theta_lazy_threshold, exponents, thresholds, out_pdf=out_pdf, out_png=out_png)


def build_theta_lazy_threshold(exponents: pd.DataFrame, thresholds: pd.DataFrame) -> Figure:
    """A2 ``theta_lazy_threshold``: fitted RD exponent against ``s`` with its bootstrap interval
    (error bars), hue = layer, panels rows = scheme, columns = (activation, depth); lines at
    exponent 0 and at ``s = 0`` (the theta-lazy boundary), and per layer ``s*`` (dotted) with its
    interval (shaded) from :func:`~lazyphase.stats.thresholds`, or "no crossing"."""
    rcols = present_cols(exponents, ("scheme",))
    ccols = present_cols(exponents, ("activation", "depth"))
    rows = group_keys(exponents, rcols) or [()]
    cols = group_keys(exponents, ccols) or [()]
    layers = layer_order(exponents["layer_name"]) if "layer_name" in exponents else ["(all)"]
    colors = sns.color_palette("deep", n_colors=max(len(layers), 1))
    lcolor = dict(zip(layers, colors))
    tcols = [c for c in (*rcols, *ccols, "layer_name") if c in thresholds.columns]
    s_all = pd.to_numeric(exponents.get("s", pd.Series(dtype=float)), errors="coerce")
    span = float(s_all.max() - s_all.min()) if s_all.notna().any() else 1.0
    span = span if span > 0 else 1.0

    fig, axes = panel_grid(len(rows), len(cols), panel_w=6.4, panel_h=3.4)
    for i, rkey in enumerate(rows):
        for j, ckey in enumerate(cols):
            ax = axes[i, j]
            sub = select_rows(select_rows(exponents, rcols, rkey), ccols, ckey)
            ax.set_title(_facet_title(rcols, rkey, ccols, ckey), fontsize="small")
            ctx = dict(zip([*rcols, *ccols], (*rkey, *ckey)))
            _draw_threshold_panel(ax, sub, thresholds, tcols, ctx, lcolor, span)
    suptitle(fig, "A2 regime exponent against $s$ (< 0 lazy, ≈ 0 critical, > 0 condensed); "
                  "bars: bootstrap interval over seeds; dotted line and band: crossing $s^*$ "
                  "and its bootstrap interval")  # fmt: skip
    figure_legend(fig, [key_line("$s = 0$ (theta-lazy boundary)", color="k", ls="--")])
    return drop_empty_axes(fig)


def _facet_title(rcols, rkey: tuple, ccols, ckey: tuple) -> str:
    """``row values, column values`` of a panel (the empty parts left out)."""
    parts = (group_label(rcols, rkey, set()), group_label(ccols, ckey, set()))
    return ", ".join(x for x in parts if x)


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
        _exponent_series(ax, d.sort_values("s"), dx, color, lname)
        key = {**ctx, "layer_name": lname}
        tr = select_rows(thresholds, tcols, tuple(norm_key(key[c]) for c in tcols))
        if not _crossing_marker(ax, tr, color, lname):
            no_cross.append(layer_math(lname))
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.axvline(0.0, color="k", ls="--", lw=1.0)
    if no_cross:
        ax.text(
            0.02,
            0.03,
            "no crossing: " + ", ".join(no_cross),
            transform=ax.transAxes,
            fontsize="x-small",
            color="0.25",
            va="bottom",
            ha="left",
        )
    ax.set_xlabel(S_LABEL)
    ax.set_ylabel(r"RD exponent: slope of $\log\mathrm{RD}$ vs $\log m$")
    legend_right(ax)


def _exponent_series(ax, d: pd.DataFrame, dx: float, color, lname: str) -> None:
    """The exponents of one layer against ``s`` (shifted by ``dx``) with their intervals."""
    y = d["slope"].to_numpy(float)
    lo = np.clip(y - d["ci_low"].to_numpy(float), 0, None)
    hi = np.clip(d["ci_high"].to_numpy(float) - y, 0, None)
    yerr = np.nan_to_num(np.vstack([lo, hi]), nan=0.0)
    ok = np.isfinite(y)
    if ok.any():
        ax.errorbar(
            d["s"].to_numpy(float)[ok] + dx,
            y[ok],
            yerr=yerr[:, ok],
            marker="o",
            ms=3.5,
            lw=1.1,
            capsize=2.5,
            color=color,
            label=f"{layer_math(lname)}",
        )


def _crossing_marker(ax, tr: pd.DataFrame, color, lname: str) -> bool:
    """Draw the crossing ``s*`` of threshold row ``tr`` (dotted) and its interval (band);
    ``False`` when there is none."""
    star = float(tr["s_star"].iloc[0]) if len(tr) else np.nan
    if not np.isfinite(star):
        return False
    slo, shi = (float(tr[c].iloc[0]) for c in ("s_star_low", "s_star_high"))
    if np.isfinite(slo) and np.isfinite(shi):
        ax.axvspan(slo, shi, color=color, alpha=0.15, lw=0)
    ax.axvline(
        star,
        color=color,
        ls=":",
        lw=1.4,
        label=f"$s^*$ ({layer_math(lname)}) = {fmt_num(star)}\n{_interval_text(tr.iloc[0], slo, shi)}",
    )
    return True


def _interval_text(row: pd.Series, lo: float, hi: float) -> str:
    """``[lo, hi] (k% of resamples cross)``, or why there is no interval (the threshold note)."""
    frac = float(row.get("frac_boot_cross", np.nan))
    share = f", {100 * frac:.0f}% cross" if np.isfinite(frac) else ""
    if np.isfinite(lo) and np.isfinite(hi):
        return f"[{fmt_num(lo)}, {fmt_num(hi)}{share}]"
    lo_t = fmt_num(lo) if np.isfinite(lo) else "below grid" if "below" in str(row.get("note")) else "?"
    hi_t = fmt_num(hi) if np.isfinite(hi) else "above grid" if "above" in str(row.get("note")) else "?"
    if "no interval" in str(row.get("note")):
        return "(no interval: too few seeds)"
    return f"[{lo_t}, {hi_t}{share}]"


# ----------------------------------------------------------------------------- A3
def _seed_median(d: pd.DataFrame, col: str = "train_loss") -> tuple[np.ndarray, np.ndarray]:
    """Seed-median ``R(t)`` (column ``col``): each seed's ``log R`` interpolated on the union of
    the snapshot times (held at its last value after the seed stopped), then the median."""
    curves = []
    for _, g in d.groupby("seed", sort=True) if "seed" in d else [(0, d)]:
        g = g.sort_values("t")
        ok = positive_mask(g[col]) & np.isfinite(g["t"].to_numpy(float))
        if ok.sum() >= 1:
            curves.append((g["t"].to_numpy(float)[ok], np.log(g[col].to_numpy(float)[ok])))
    if not curves:
        return np.array([]), np.array([])
    grid = np.unique(np.concatenate([c[0] for c in curves]))
    vals = np.vstack([np.interp(grid, t, y) for t, y in curves])
    return grid, np.exp(np.median(vals, axis=0))


def plot_loss_decay(traj, out_pdf: str | Path, out_png=None, *, m: int | None = None) -> None:
    plotted(build_loss_decay, traj, out_pdf=out_pdf, out_png=out_png, m=m)


def build_loss_decay(traj: pd.DataFrame, *, m: int | None = None) -> Figure:
    """A3 ``loss_decay``: training loss ``R(t)`` against ``t = η·step`` (both log axes: the
    decay spans decades of t), for every ``s``, at width ``m`` (default: the largest ``m`` of
    each panel), seed-median (diverged replicas left out), panels rows = scheme, columns =
    (activation, depth). Dashed, when ``traj`` has ``train_loss_lin``: the exact linearized loss
    ``R_lin(t) = (1/2n) Σ_k Π_τ (1 − η_τ λ_k/n)² (u_k·e0)²`` over the full spectrum of ``Θ0``,
    with the network's own step sizes (docs/conventions.md §5), seed median on the same grid.
    The legend gives one number per curve, :func:`loss_gap`: the largest relative gap
    ``max_t |R − R_lin| / R_lin`` over the snapshots.
    """
    rcols = present_cols(traj, ("scheme",))
    ccols = present_cols(traj, ("activation", "depth"))
    rows = group_keys(traj, rcols) or [()]
    cols = group_keys(traj, ccols) or [()]
    styles = s_styles(traj["s"] if "s" in traj.columns else [])
    has_lin = "train_loss_lin" in traj.columns
    status = traj["status"] if "status" in traj.columns else pd.Series("", index=traj.index)
    n_div = replica_count(traj[status == DIVERGED]) if (status == DIVERGED).any() else 0
    kept = traj[status != DIVERGED]
    fig, axes = panel_grid(len(rows), len(cols), panel_w=6.0, panel_h=3.4)
    for i, rkey in enumerate(rows):
        for j, ckey in enumerate(cols):
            sub = select_rows(select_rows(kept, rcols, rkey), ccols, ckey)
            m_used = m if m is not None else (sub["m"].max() if len(sub) else None)
            if m_used is not None and pd.notna(m_used):
                sub = sub[sub["m"] == m_used]
            axes[i, j].set_title(f"{_facet_title(rcols, rkey, ccols, ckey)}, $m$ = {m_used}",
                                 fontsize="small")  # fmt: skip
            _draw_decay_panel(axes[i, j], sub, styles, has_lin)
    lin = r"; dashed: exact linearized loss $R_\mathrm{lin}(t)$, same steps" if has_lin else ""
    suptitle(fig, f"A3 training loss decay, seed median{lin}; {n_div} diverged replicas left "
                  "out")  # fmt: skip
    key = [key_line("network, seed median")]
    if has_lin:
        key.append(key_line(r"linearized $R_\mathrm{lin}(t)$ (exact)", ls="--"))
    figure_legend(fig, key)
    return drop_empty_axes(fig)


def _draw_decay_panel(ax, sub: pd.DataFrame, styles: dict, has_lin: bool) -> None:
    """One panel of A3: per ``s`` the seed-median loss and the exact linearized loss (nothing
    drawn, so the panel is dropped, without a positive loss)."""
    if sub.empty or not positive_mask(sub["train_loss"]).any():
        return
    ymin, ymax = np.inf, -np.inf
    for s_val in sorted({norm_key(v) for v in sub["s"].dropna()}):
        med = _decay_series(ax, select_rows(sub, ["s"], (s_val,)), s_val, styles[s_val], has_lin)
        if med is not None and med.size:
            ymin, ymax = min(ymin, med.min()), max(ymax, med.max())
    if not np.isfinite(ymin):
        return
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_ylim(ymin / 3.0, ymax * 3.0)
    ax.set_xlabel(T_LABEL)
    ax.set_ylabel(r"training loss $R(t)$")
    legend_right(ax, title=r"$s$: max gap $|R - R_\mathrm{lin}|/R_\mathrm{lin}$" if has_lin
                 else "$s$")  # fmt: skip


def _decay_series(ax, d: pd.DataFrame, s_val, style: dict, has_lin: bool) -> np.ndarray | None:
    """The trajectories ``d`` of one ``s``: seed-median loss, labelled with its largest gap to
    the linearized curve (dashed); the median curve at ``t > 0`` (the log time axis), or
    ``None`` when nothing is drawn."""
    grid, med = _seed_median(d)
    if grid.size == 0:
        return None
    lgrid, lmed = _seed_median(d, "train_loss_lin") if has_lin else ((), ())
    gap = loss_gap(grid, med, lgrid, lmed)
    label = fmt_s(s_val) + (f": {fmt_sci(gap)}" if np.isfinite(gap) else "")
    pos = grid > 0
    every = max(1, int(pos.sum() // 8))  # a few markers: the series' second cue besides colour
    ax.plot(grid[pos], med[pos], color=style["color"], lw=1.5, marker=style["marker"], ms=3.5,
            markevery=every, label=label)  # fmt: skip
    if len(lgrid):
        lpos = np.asarray(lgrid) > 0
        ax.plot(np.asarray(lgrid)[lpos], np.asarray(lmed)[lpos], color=style["color"], ls="--",
                lw=1.0)  # fmt: skip
    return med[pos]


def loss_gap(t: np.ndarray, loss: np.ndarray, t_lin, loss_lin) -> float:
    """The largest relative gap ``max_t |R(t) − R_lin(t)| / R_lin(t)`` of two curves, ``R_lin``
    interpolated (in ``log``) onto the times of ``R``; NaN without a linearized curve."""
    t_lin, loss_lin = np.asarray(t_lin, float), np.asarray(loss_lin, float)
    if t_lin.size == 0 or np.asarray(t).size == 0:
        return float("nan")
    lin = np.exp(np.interp(t, t_lin, np.log(loss_lin)))
    return float(np.max(np.abs(loss - lin) / lin))


# ----------------------------------------------------------------------------- A4
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


# ----------------------------------------------------------------------------- A6
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
        gm = np.exp(np.log(d["fdist"].astype(float)).groupby(d["m"]).mean())
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
    ax.set_ylabel(r"$D = \|f(\theta_T) - f_\mathrm{lin}(T)\|\,/\,\|f_\mathrm{lin}(T) - f(\theta_0)\|$")
    legend_right(ax, title="$s$: slope [interval]")


def _fdist_exponent_vs_s(ax, fexp: pd.DataFrame, thr: pd.DataFrame) -> None:
    """The ``fdist`` exponent against ``s`` with bootstrap bars, ``s*_f`` (solid, band) and the
    RD-based ``s*`` of every layer (thin dotted) from ``thr``."""
    d = fexp.sort_values("s")
    y = d["slope"].to_numpy(float)
    ok = np.isfinite(y)
    lo = np.clip(y - d["ci_low"].to_numpy(float), 0, None)
    hi = np.clip(d["ci_high"].to_numpy(float) - y, 0, None)
    yerr = np.nan_to_num(np.vstack([lo, hi]), nan=0.0)
    ax.errorbar(d["s"].to_numpy(float)[ok], y[ok], yerr=yerr[:, ok], marker="o", ms=3.5,
                lw=1.2, capsize=2.5, color="k", label="$D$ exponent")  # fmt: skip
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.axvline(0.0, color="k", ls="--", lw=0.9, label="$s = 0$ (theta-lazy boundary)")
    text = []
    if len(thr):
        r = thr.iloc[0]
        sf = float(r.get("s_star_f", np.nan))
        if np.isfinite(sf):
            flo, fhi = float(r["s_star_f_low"]), float(r["s_star_f_high"])
            if np.isfinite(flo) and np.isfinite(fhi):
                ax.axvspan(flo, fhi, color="tab:red", alpha=0.15, lw=0)
            ax.axvline(sf, color="tab:red", lw=1.4,
                       label=f"$s^*_f$ = {fmt_num(sf)} [{fmt_num(flo)}, {fmt_num(fhi)}]")  # fmt: skip
        else:
            text.append("$s^*_f$: no crossing")
        colors = sns.color_palette("deep", n_colors=max(len(thr), 1))
        for c, (_, t) in zip(colors, thr.iterrows()):
            star = float(t["s_star"])
            name = layer_math(str(t.get("layer_name", "")))
            if np.isfinite(star):
                ax.axvline(star, color=c, ls=":", lw=1.1, label=f"RD $s^*$ ({name}) = {fmt_num(star)}")
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
    status = per_rep["status"] if "status" in per_rep.columns else pd.Series("", index=per_rep.index)
    n_div = replica_count(per_rep[status == DIVERGED]) if (status == DIVERGED).any() else 0
    kept = per_rep[status != DIVERGED]
    rcols = present_cols(kept, ("scheme",))
    ccols = present_cols(kept, ("activation", "depth"))
    schemes = group_keys(kept, rcols) or [()]
    cols = group_keys(kept, ccols) or [()]
    styles = s_styles(kept["s"] if "s" in kept.columns else [])
    fig, axes = panel_grid(3 * len(schemes), len(cols), panel_w=6.4, panel_h=3.1)
    for i, skey in enumerate(schemes):
        for j, ckey in enumerate(cols):
            sub = select_rows(select_rows(kept, rcols, skey), ccols, ckey)
            ctx = dict(zip([*rcols, *ccols], (*skey, *ckey)))
            axs = [axes[3 * i + k, j] for k in range(3)]
            for ax in axs:
                ax.set_title(_facet_title(rcols, skey, ccols, ckey), fontsize="small")
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
