"""Figures A1, A2, A3, A5 of the catalog (docs/experiments.md §A) from the aggregated tables.

Every function writes a PDF and a PNG (``out_png=None``: ``out_pdf`` is taken as a path stem and
``.pdf``/``.png`` are appended or substituted). Figures are built on ``matplotlib.figure.Figure``
without pyplot, so no backend, global figure registry or global style is touched; seaborn gives
the style (as a context manager) and the palettes. Panels are facets of
``(scheme, activation, depth)`` × layer (A1, A5) or scheme × ``(activation, depth)`` (A2, A3);
empty panels say "no data", NaN values are skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from lazyphase.stats import FIT_BY, fit_exponents
from lazyphase.studies.plotting import (
    DIVERGED,
    M_LABEL,
    ROW_KEYS,
    S_LABEL,
    T_LABEL,
    constant_label,
    fmt_num,
    fmt_s,
    group_keys,
    group_label,
    layer_math,
    layer_order,
    legend_outside,
    mark_empty,
    median_of,
    norm_key,
    panel_grid,
    plot_style,
    positive_mask,
    present_cols,
    replica_count,
    s_palette,
    save,
    select_rows,
    suptitle,
    varying_cols,
)


# ----------------------------------------------------------------------------- A1 / A5
def _width_scaling(
    runs: pd.DataFrame,
    ycol: str,
    ylabel: str,
    slopes: pd.DataFrame | None,
    title: str,
    out_pdf,
    out_png,
) -> None:
    """RD-like quantity ``ycol`` against ``m`` (log–log); rows = (scheme, activation, depth),
    columns = layer name, one colour per ``s``; geometric mean over non-diverged seeds (line),
    seeds (dots), diverged replicas ('x'); legend ``s=…: slope …`` from ``slopes``."""
    missing = [c for c in ("m", "s", "layer_name", ycol) if c not in runs.columns]
    if missing:
        raise KeyError(f"runs lacks the column(s) {missing}")
    rcols = present_cols(runs, ROW_KEYS)
    rows = group_keys(runs, rcols) or [()]
    layers = layer_order(runs["layer_name"]) if "layer_name" in runs.columns else []
    layers = layers or ["(none)"]
    pal = s_palette(runs["s"] if "s" in runs.columns else [])
    varying = varying_cols(runs, rcols)
    status = runs["status"] if "status" in runs.columns else pd.Series("", index=runs.index)
    diverged = runs[status == DIVERGED]
    n_div = replica_count(diverged) if len(diverged) else 0
    labels = _SlopeLabels(runs, slopes)

    with plot_style():
        fig, axes = panel_grid(len(rows), len(layers))
        for i, rkey in enumerate(rows):
            for j, lname in enumerate(layers):
                ax = axes[i, j]
                sub = select_rows(runs, rcols, rkey)
                if "layer_name" in sub.columns:
                    sub = sub[sub["layer_name"].astype(str) == lname]
                head = f"{group_label(rcols, rkey, varying)} — {layer_math(lname)}".strip(" —")
                ax.set_title(head, fontsize="small")
                ctx = dict(zip([*rcols, "layer_name"], (*rkey, lname)))
                _draw_width_panel(ax, sub, ycol, ylabel, lname, pal, labels, ctx)
        const = constant_label(runs, rcols)
        suptitle(
            fig,
            f"{title}{' (' + const + ')' if const and varying else ''}\n"
            f"lines: geometric mean over seeds; dots: seeds; x: diverged replicas, excluded from "
            f"means and fits ({n_div} diverged)",
            fontsize="medium",
        )
        save(fig, out_pdf, out_png)


class _SlopeLabels:
    """Legend labels ``s=…: slope …`` of :func:`_width_scaling` from a table of slopes (the
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
        return f"s={fmt_s(s_val)}" + (f": slope {fmt_num(slope)}" if self.given else "")


def _draw_width_panel(ax, sub, ycol, ylabel, lname, pal, labels: _SlopeLabels, ctx) -> None:
    """One panel of :func:`_width_scaling`: the rows ``sub`` of one layer, one series per ``s``."""
    if sub.empty or not positive_mask(sub[ycol]).any():
        mark_empty(ax)
        return
    for s_val in sorted({norm_key(v) for v in sub["s"].dropna()}):
        d = select_rows(sub, ["s"], (s_val,))
        d = d[positive_mask(d[ycol])]
        _width_series(ax, d, ycol, pal[s_val], labels(ctx, s_val))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(M_LABEL)
    ax.set_ylabel(ylabel.format(layer=layer_math(lname)))
    legend_outside(ax)


def _width_series(ax, d: pd.DataFrame, ycol: str, color, label: str) -> None:
    """Diverged replicas ('x'), the other seeds (dots) and their geometric mean over seeds per
    ``m`` (line, labelled)."""
    bad = d["status"] == DIVERGED if "status" in d.columns else pd.Series(False, index=d.index)
    good = d[~bad]
    if bad.any():
        ax.scatter(d.loc[bad, "m"], d.loc[bad, ycol], marker="x", s=28, color=color, linewidths=1.0)
    if good.empty:
        return
    ax.scatter(good["m"], good[ycol], s=9, color=color, alpha=0.35, linewidths=0)
    gm = np.exp(np.log(good[ycol].astype(float)).groupby(good["m"]).mean())
    ax.plot(gm.index, gm.to_numpy(), marker="o", ms=3.5, lw=1.3, color=color, label=label)


def plot_theta_lazy_rd(
    runs: pd.DataFrame,
    exponents: pd.DataFrame,
    out_pdf: str | Path,
    out_png: str | Path | None = None,
) -> None:
    """A1 ``theta_lazy_rd``: ``RD_final(W[l])`` against ``m`` on log–log axes, one line per
    ``s`` (geometric mean over non-diverged seeds, dots per seed, 'x' for diverged replicas and
    their count in the title), panels rows = (scheme, activation, depth), columns = layer; the
    legend gives the fitted slopes of ``exponents`` (:func:`~lazyphase.stats.fit_exponents`).
    """
    _width_scaling(
        runs,
        "rd_final",
        "RD_final({layer}) = ‖ΔW‖_F / ‖W(0)‖_F",
        exponents,
        "A1 theta-lazy: relative displacement at the end of training against width",
        out_pdf,
        out_png,
    )


def plot_gram_drift(
    runs: pd.DataFrame, out_pdf: str | Path, out_png: str | Path | None = None
) -> None:
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
    _width_scaling(
        runs,
        "gram_drift",
        "sup_t ‖G{layer}(t) − G(0)‖_F / ‖G(0)‖_F",
        slopes,
        "A5 Gram drift against width (→ 0 on the lazy side)",
        out_pdf,
        out_png,
    )


# ----------------------------------------------------------------------------- A2
def plot_theta_lazy_threshold(
    exponents: pd.DataFrame,
    thresholds: pd.DataFrame,
    out_pdf: str | Path,
    out_png: str | Path | None = None,
) -> None:
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

    with plot_style():
        fig, axes = panel_grid(len(rows), len(cols), panel_w=4.6, panel_h=3.4)
        for i, rkey in enumerate(rows):
            for j, ckey in enumerate(cols):
                ax = axes[i, j]
                sub = select_rows(select_rows(exponents, rcols, rkey), ccols, ckey)
                ax.set_title(_facet_title(rcols, rkey, ccols, ckey), fontsize="small")
                ctx = dict(zip([*rcols, *ccols], (*rkey, *ckey)))
                _draw_threshold_panel(ax, sub, thresholds, tcols, ctx, lcolor, span)
        suptitle(
            fig,
            "A2 regime exponent against s (< 0 lazy, ≈ 0 critical, > 0 condensed)\n"
            "bars: bootstrap interval over seeds; dotted line and band: crossing s* and its "
            "bootstrap interval",
            fontsize="medium",
        )
        save(fig, out_pdf, out_png)


def _facet_title(rcols, rkey: tuple, ccols, ckey: tuple) -> str:
    """``row values, column values`` of a panel (the empty parts left out)."""
    parts = (group_label(rcols, rkey, set()), group_label(ccols, ckey, set()))
    return ", ".join(x for x in parts if x)


def _draw_threshold_panel(ax, sub, thresholds, tcols, ctx: dict, lcolor, span: float) -> None:
    """One panel of A2 (``ctx``: its row and column keys): per layer the exponents with error
    bars and the crossing ``s*`` of ``thresholds`` (matched on ``tcols``)."""
    if sub.empty or not np.isfinite(sub["slope"].to_numpy(float)).any():
        mark_empty(ax)
        return
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
    ax.axvline(0.0, color="k", ls="--", lw=1.0, label="s = 0 (theta-lazy boundary)")
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
    ax.set_ylabel("RD exponent: slope of log RD_final vs log m")
    legend_outside(ax)


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
        label=f"s* ({layer_math(lname)}) = {fmt_num(star)} {_interval_text(tr.iloc[0], slo, shi)}",
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


def plot_loss_decay(
    traj: pd.DataFrame,
    out_pdf: str | Path,
    out_png: str | Path | None = None,
    *,
    m: int | None = None,
) -> None:
    """A3 ``loss_decay``: training loss ``R(t)`` (log axis) against ``t = η·step`` for every
    ``s``, at width ``m`` (default: the largest ``m`` of each panel), seed-median (diverged
    replicas left out), panels rows = scheme, columns = (activation, depth). Dashed, when
    ``traj`` has ``train_loss_lin``: the exact linearized loss
    ``R_lin(t) = (1/2n) Σ_k Π_τ (1 − η_τ λ_k/n)² (u_k·e0)²`` over the full spectrum of ``Θ0``,
    with the network's own step sizes (docs/conventions.md §5), seed median on the same grid.
    The legend gives one number per curve, :func:`loss_gap`: the largest relative gap
    ``max_t |R − R_lin| / R_lin`` over the snapshots.
    """
    rcols = present_cols(traj, ("scheme",))
    ccols = present_cols(traj, ("activation", "depth"))
    rows = group_keys(traj, rcols) or [()]
    cols = group_keys(traj, ccols) or [()]
    pal = s_palette(traj["s"] if "s" in traj.columns else [])
    has_lin = "train_loss_lin" in traj.columns
    status = traj["status"] if "status" in traj.columns else pd.Series("", index=traj.index)
    n_div = replica_count(traj[status == DIVERGED]) if (status == DIVERGED).any() else 0
    kept = traj[status != DIVERGED]

    with plot_style():
        fig, axes = panel_grid(len(rows), len(cols), panel_w=4.6, panel_h=3.4)
        for i, rkey in enumerate(rows):
            for j, ckey in enumerate(cols):
                ax = axes[i, j]
                sub = select_rows(select_rows(kept, rcols, rkey), ccols, ckey)
                m_used = m if m is not None else (sub["m"].max() if len(sub) else None)
                if m_used is not None and pd.notna(m_used):
                    sub = sub[sub["m"] == m_used]
                ax.set_title(
                    f"{_facet_title(rcols, rkey, ccols, ckey)}, m={m_used}", fontsize="small"
                )
                _draw_decay_panel(ax, sub, pal, has_lin)
        suptitle(
            fig,
            "A3 loss decay against the exact linearized dynamics (log R vs t); "
            f"{n_div} diverged replicas left out\n"
            "dashed: R_lin(t) = (1/2n) Σ_k Π_τ (1 − η_τ λ_k/n)² (u_k·e0)², same steps as the "
            "network; legend: gap = max_t |R − R_lin| / R_lin over the snapshots",
            fontsize="medium",
        )
        save(fig, out_pdf, out_png)


def _draw_decay_panel(ax, sub: pd.DataFrame, pal: dict, has_lin: bool) -> None:
    """One panel of A3: per ``s`` the seed-median loss and the exact linearized loss."""
    if sub.empty or not positive_mask(sub["train_loss"]).any():
        mark_empty(ax)
        return
    ymin, ymax = np.inf, -np.inf
    for s_val in sorted({norm_key(v) for v in sub["s"].dropna()}):
        med = _decay_series(ax, select_rows(sub, ["s"], (s_val,)), s_val, pal[s_val], has_lin)
        if med is not None:
            ymin, ymax = min(ymin, med.min()), max(ymax, med.max())
    if not np.isfinite(ymin):
        mark_empty(ax)
        return
    ax.set_yscale("log")
    ax.set_ylim(ymin / 3.0, ymax * 3.0)
    ax.set_xlabel(T_LABEL)
    ax.set_ylabel("training loss R(t)")
    handles, labels = ax.get_legend_handles_labels()
    for ls, text in [("-", "network, seed median"), ("--", "linearized R_lin(t), exact")]:
        handles.append(Line2D([], [], color="0.3", ls=ls))
        labels.append(text)
    ax.legend(handles, labels, fontsize="x-small", loc="best", framealpha=0.8)


def _decay_series(ax, d: pd.DataFrame, s_val, color, has_lin: bool) -> np.ndarray | None:
    """The trajectories ``d`` of one ``s``: seed-median loss, labelled with its largest gap to
    the linearized curve (dashed); the median curve, or ``None`` when nothing is drawn."""
    grid, med = _seed_median(d)
    if grid.size == 0:
        return None
    lgrid, lmed = _seed_median(d, "train_loss_lin") if has_lin else ((), ())
    gap = loss_gap(grid, med, lgrid, lmed)
    label = f"s={fmt_s(s_val)}" + (f": gap {fmt_num(gap)}" if np.isfinite(gap) else "")
    ax.plot(grid, med, color=color, lw=1.5, label=label)
    if len(lgrid):
        ax.plot(lgrid, lmed, color=color, ls="--", lw=1.0)
    return med


def loss_gap(t: np.ndarray, loss: np.ndarray, t_lin, loss_lin) -> float:
    """The largest relative gap ``max_t |R(t) − R_lin(t)| / R_lin(t)`` of two curves, ``R_lin``
    interpolated (in ``log``) onto the times of ``R``; NaN without a linearized curve."""
    t_lin, loss_lin = np.asarray(t_lin, float), np.asarray(loss_lin, float)
    if t_lin.size == 0 or np.asarray(t).size == 0:
        return float("nan")
    lin = np.exp(np.interp(t, t_lin, np.log(loss_lin)))
    return float(np.max(np.abs(loss - lin) / lin))


# ----------------------------------------------------------------------------- A4
def plot_gram_concentration(
    table: pd.DataFrame,
    summary: pd.DataFrame,
    out_pdf: str | Path,
    out_png: str | Path | None = None,
) -> None:
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

    with plot_style():
        fig, axes = panel_grid(2, len(panels), panel_w=4.0, panel_h=3.3)
        for j, pkey in enumerate(panels):
            ax, bx = axes[0, j], axes[1, j]
            sub = select_rows(table, pcols, pkey)
            head = group_label(pcols, pkey, set())
            lam_s = median_of(sub["lambda_S"]) if "lambda_S" in sub.columns else np.nan
            ax.set_title(head, fontsize="small")
            bx.set_title(
                f"{head}, λ_S = {lam_s:.3g}" if np.isfinite(lam_s) else head, fontsize="small"
            )
            if sub.empty or not positive_mask(sub["rel_error"]).any():
                mark_empty(ax)
                mark_empty(bx)
                continue
            ctx = dict(zip(pcols, pkey))
            _draw_concentration_panels(ax, bx, sub, summary, scols, ctx, lcolor)
        n_draws = table["seed"].nunique() if "seed" in table.columns else len(table)
        fig.suptitle(
            "A4 concentration of the per-layer Gram at initialization, "
            "G[l] = (m β_l²/κ²) Θ[l] against its limit K[l]\n"
            f"top: relative Frobenius error (line: median over {n_draws} draws, dots: draws; "
            "legend: fitted slope of log error vs log m, bootstrap interval); "
            "bottom: λ_min(G[l]) ≥ ¾ λ_S, λ_S = min_l λ_min(K[l])",
            fontsize="medium",
        )
        save(fig, out_pdf, out_png)


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
        ax.plot(m_all, ref, ls="--", color="0.2", lw=1.0, label="slope −½ (reference)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(M_LABEL)
    ax.set_ylabel("‖G[l](θ0) − K[l]‖_F / ‖K[l]‖_F")
    legend_outside(ax)
    bx.set_xscale("log", base=2)
    bx.set_ylim(-0.05, 1.05)
    bx.axhline(1.0, color="0.6", lw=0.8)
    bx.set_xlabel(M_LABEL)
    bx.set_ylabel("fraction of draws with λ_min(G[l]) ≥ ¾ λ_S")
    if bx.get_legend_handles_labels()[0]:
        bx.legend(fontsize="x-small", loc="lower right", framealpha=0.8)
    else:
        mark_empty(bx)


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
def _fdist_vs_m(ax, sub: pd.DataFrame, fexp: pd.DataFrame, pal: dict) -> None:
    """``fdist`` against ``m`` (log–log), one line per ``s`` (geometric mean over the kept
    seeds, dots per seed), legend ``s: slope [ci]`` from ``fexp``."""
    for s_val in sorted({norm_key(v) for v in sub["s"].dropna()}):
        d = select_rows(sub, ["s"], (s_val,))
        d = d[positive_mask(d["fdist"])]
        if d.empty:
            continue
        color = pal[s_val]
        ax.scatter(d["m"], d["fdist"], s=9, color=color, alpha=0.35, linewidths=0)
        gm = np.exp(np.log(d["fdist"].astype(float)).groupby(d["m"]).mean())
        fit = select_rows(fexp, ["s"], (s_val,))
        label = f"s={fmt_s(s_val)}"
        if len(fit):
            r = fit.iloc[0]
            label += f": {fmt_num(r['slope'])} [{fmt_num(r['ci_low'])}, {fmt_num(r['ci_high'])}]"
        ax.plot(gm.index, gm.to_numpy(), marker="o", ms=3, lw=1.2, color=color, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(M_LABEL)
    ax.set_ylabel("D = ‖f(θ_T) − f_lin(T)‖ / ‖f_lin(T) − f(θ0)‖")
    ax.legend(fontsize="xx-small", loc="best", framealpha=0.8, title="s: slope [ci]",
              title_fontsize="xx-small")  # fmt: skip


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
                lw=1.2, capsize=2.5, color="k", label="D exponent")  # fmt: skip
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.axvline(0.0, color="k", ls="--", lw=0.9, label="s = 0 (theta-lazy boundary)")
    text = []
    if len(thr):
        r = thr.iloc[0]
        sf = float(r.get("s_star_f", np.nan))
        if np.isfinite(sf):
            flo, fhi = float(r["s_star_f_low"]), float(r["s_star_f_high"])
            if np.isfinite(flo) and np.isfinite(fhi):
                ax.axvspan(flo, fhi, color="tab:red", alpha=0.15, lw=0)
            ax.axvline(sf, color="tab:red", lw=1.4,
                       label=f"s*_f = {fmt_num(sf)} [{fmt_num(flo)}, {fmt_num(fhi)}]")  # fmt: skip
        else:
            text.append("s*_f: no crossing")
        colors = sns.color_palette("deep", n_colors=max(len(thr), 1))
        for c, (_, t) in zip(colors, thr.iterrows()):
            star = float(t["s_star"])
            name = layer_math(str(t.get("layer_name", "")))
            if np.isfinite(star):
                ax.axvline(star, color=c, ls=":", lw=1.1, label=f"RD s* ({name}) = {fmt_num(star)}")
            else:
                text.append(f"RD s* ({name}): no crossing")
        neg = r.get("lazy_side_negative_f", np.nan)
        if isinstance(neg, (bool, np.bool_)):
            text.append("D exponent < 0 for every s > 0: " + ("yes" if neg else "no"))
    if text:
        ax.text(0.02, 0.97, "\n".join(text), transform=ax.transAxes, fontsize="xx-small",
                color="0.2", va="top", ha="left")  # fmt: skip
    ax.set_xlabel(S_LABEL)
    ax.set_ylabel("slope of log D vs log m")
    ax.legend(fontsize="xx-small", loc="upper right", framealpha=0.8)


def _test_losses_vs_s(ax, sub: pd.DataFrame) -> None:
    """Network against kernel predictor: seed-median test loss at the end, at the panel's
    largest ``m``, against ``s``."""
    m_max = sub["m"].max()
    d = sub[sub["m"] == m_max]
    med = d.groupby("s")[["test_loss_final", "test_loss_lin"]].median().sort_index()
    ax.plot(med.index, med["test_loss_final"], marker="o", ms=3.5, color="tab:blue",
            label="network f(θ_T)")  # fmt: skip
    ax.plot(med.index, med["test_loss_lin"], marker="s", ms=3.5, ls="--", color="tab:orange",
            label="kernel predictor f_lin(T)")  # fmt: skip
    if "test_loss_best" in d.columns:
        best = d.groupby("s")["test_loss_best"].median().sort_index()
        ax.plot(best.index, best, ls=":", lw=1.0, color="tab:blue", label="network, best over t")
    ax.axvline(0.0, color="k", ls="--", lw=0.9)
    ax.set_yscale("log")
    ax.set_xlabel(S_LABEL)
    ax.set_ylabel(f"test loss at the end (m = {m_max}, seed median)")
    ax.legend(fontsize="xx-small", loc="best", framealpha=0.8)


def plot_function_distance(
    runs: pd.DataFrame,
    fexponents: pd.DataFrame,
    threshold: pd.DataFrame,
    out_pdf: str | Path,
    out_png: str | Path | None = None,
) -> None:
    """A6 ``function_distance``: the trained network against its linearized (kernel) run
    (docs/conventions.md §5). Columns = (activation, depth); for every scheme three rows:
    ``D = ‖f(θ_T) − f_lin(T)‖ / ‖f_lin(T) − f(θ0)‖`` on the test set against ``m`` per ``s``
    (legend: fitted slope and bootstrap interval, :func:`~lazyphase.stats.function_exponents`);
    that exponent against ``s`` with the crossing ``s*_f`` and the RD-based ``s*`` of every
    layer (``threshold``); the test loss of the network and of the kernel predictor against
    ``s`` at the largest ``m``. One row per replica is used (``runs`` repeats it per layer);
    diverged replicas are left out."""
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
    pal = s_palette(kept["s"] if "s" in kept.columns else [])
    fcols = [c for c in (*rcols, *ccols) if c in fexponents.columns]
    tcols = [c for c in (*rcols, *ccols) if c in threshold.columns]

    with plot_style():
        fig, axes = panel_grid(3 * len(schemes), len(cols), panel_w=4.2, panel_h=3.1)
        for i, skey in enumerate(schemes):
            for j, ckey in enumerate(cols):
                sub = select_rows(select_rows(kept, rcols, skey), ccols, ckey)
                ctx = dict(zip([*rcols, *ccols], (*skey, *ckey)))
                fexp = select_rows(fexponents, fcols, tuple(norm_key(ctx[c]) for c in fcols))
                thr = select_rows(threshold, tcols, tuple(norm_key(ctx[c]) for c in tcols))
                title = ", ".join(
                    x for x in (group_label(rcols, skey, set()), group_label(ccols, ckey, set()))
                    if x
                )  # fmt: skip
                axs = [axes[3 * i + k, j] for k in range(3)]
                for ax in axs:
                    ax.set_title(title, fontsize="small")
                if sub.empty or not positive_mask(sub["fdist"]).any():
                    for ax in axs:
                        mark_empty(ax, "no linearized run")
                    continue
                _fdist_vs_m(axs[0], sub, fexp, pal)
                if len(fexp) and np.isfinite(fexp["slope"].to_numpy(float)).any():
                    _fdist_exponent_vs_s(axs[1], fexp, thr)
                else:
                    mark_empty(axs[1], "no exponent")
                _test_losses_vs_s(axs[2], sub)
        suptitle(
            fig,
            "A6 function-space distance of the trained network to its linearized (kernel) run, "
            f"on the test set at the end of training; {n_div} diverged replicas left out\n"
            "rows per scheme: D against m (lines: geometric mean over seeds, dots: seeds); its "
            "exponent against s with bootstrap bars, s*_f (red) and the RD-based s* per layer "
            "(dotted); test loss of network and kernel predictor at the largest m. "
            "Theta-lazy predicts a negative D exponent for every s > 0",
            fontsize="medium",
        )
        save(fig, out_pdf, out_png)
