"""Figures A1, A2, A3, A5 of the catalog (EXPERIMENTS.md §A) from the aggregated tables.

Every function writes a PDF and a PNG (``out_png=None``: ``out_pdf`` is taken as a path stem and
``.pdf``/``.png`` are appended or substituted). Figures are built on ``matplotlib.figure.Figure``
without pyplot, so no backend, global figure registry or global style is touched; seaborn gives
the style (as a context manager) and the palettes. Panels are facets of
``(scheme, activation, depth)`` × layer (A1, A5) or scheme × ``(activation, depth)`` (A2, A3);
empty panels say "no data", NaN values are skipped.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .analysis import (
    FIT_BY,
    fit_exponents,
    linearized_rate,
    loss_decay_prediction,
    measured_decay_rate,
)

ROW_KEYS = ("scheme", "activation", "depth")
PANEL_W, PANEL_H, MAX_W = 4.2, 3.1, 19.5
DIVERGED = "diverged"
T_LABEL = "t = η·step (continuous time)"
S_LABEL = "s = log κ / log m"
M_LABEL = "width m (neurons per hidden layer)"


# ----------------------------------------------------------------------------- helpers
def _paths(out_pdf: str | Path, out_png: str | Path | None) -> tuple[Path, Path]:
    """``(pdf, png)``; with ``out_png=None`` both derive from the stem ``out_pdf``."""
    out_pdf = Path(out_pdf)
    if out_png is None:
        stem = out_pdf.with_suffix("") if out_pdf.suffix.lower() in (".pdf", ".png") else out_pdf
        return stem.with_name(stem.name + ".pdf"), stem.with_name(stem.name + ".png")
    return out_pdf, Path(out_png)


def _suptitle(fig: Figure, text: str, **kw) -> None:
    """A suptitle whose lines are wrapped to the figure's width (about 11 characters per inch)."""
    width = max(int(fig.get_figwidth() * 11), 30)
    lines = [textwrap.fill(line, width) for line in text.split("\n")]
    fig.suptitle("\n".join(lines), **kw)


def _save(fig: Figure, out_pdf: str | Path, out_png: str | Path | None) -> None:
    pdf, png = _paths(out_pdf, out_png)
    for p in (pdf, png):
        p.parent.mkdir(parents=True, exist_ok=True)
    fig.draw_without_rendering()  # run the constrained layout once, then freeze it for both files
    fig.set_layout_engine("none")
    fig.savefig(pdf)
    fig.savefig(png, dpi=150)


def _style():
    """Seaborn style and context as context managers (rcParams restored afterwards)."""
    from contextlib import ExitStack

    stack = ExitStack()
    stack.enter_context(sns.axes_style("whitegrid"))
    stack.enter_context(sns.plotting_context("paper"))
    return stack


def _num(v: float, digits: int = 2) -> str:
    """A number with a true minus sign; ``n/a`` for NaN."""
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f}".replace("-", "−")


def _s(v: float) -> str:
    """A value of ``s`` as in the legends (``−0.25``)."""
    return f"{v:g}".replace("-", "−")


def _norm(v: Hashable) -> Hashable:
    """A key value comparable across tables (floats rounded, numpy scalars unwrapped)."""
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else round(float(v), 9)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _keys(df: pd.DataFrame, cols: Sequence[str]) -> list[tuple]:
    """Distinct ``cols`` tuples of ``df`` (sorted, NaN-safe); ``[()]`` when ``cols`` is empty."""
    cols = [c for c in cols if c in df.columns]
    if not cols:
        return [()] if len(df) else []
    uniq = df[cols].drop_duplicates()
    return sorted((tuple(_norm(v) for v in r) for r in uniq.itertuples(index=False)), key=str)


def _select(df: pd.DataFrame, cols: Sequence[str], key: tuple) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for c, v in zip(cols, key):
        col = df[c]
        if v is None:
            mask &= col.isna().to_numpy()
        elif isinstance(v, float):
            mask &= np.isclose(pd.to_numeric(col, errors="coerce").to_numpy(float), v)
        else:
            mask &= (col.map(_norm) == v).to_numpy()
    return df[mask]


def _present(df: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    return [c for c in cols if c in df.columns]


def _label(cols: Sequence[str], key: tuple, varying: set[str]) -> str:
    """``lecun, tanh, L=2``: the values of ``cols`` that vary (all if none varies)."""
    parts = []
    for c, v in zip(cols, key):
        if varying and c not in varying:
            continue
        parts.append(f"L={v}" if c == "depth" else f"{c}={v}" if c == "m" else str(v))
    return ", ".join(parts)


def _varying(df: pd.DataFrame, cols: Sequence[str]) -> set[str]:
    return {c for c in cols if c in df.columns and df[c].nunique(dropna=False) > 1}


def _constant_label(df: pd.DataFrame, cols: Sequence[str]) -> str:
    fixed = [c for c in cols if c in df.columns and df[c].nunique(dropna=False) == 1]
    return _label(fixed, tuple(df[c].iloc[0] for c in fixed), set())


def _layer_order(names) -> list[str]:
    """``W1, W2, …, a`` (weights by index, the output layer last)."""

    def key(name: str):
        name = str(name)
        if name.startswith("W") and name[1:].isdigit():
            return (0, int(name[1:]), name)
        return (1, 0, name)

    return sorted({str(n) for n in names if isinstance(n, str) or pd.notna(n)}, key=key)


def _layer_math(name: str) -> str:
    """``W1`` → ``W[1]`` (the papers' notation); ``a`` stays ``a``."""
    return f"W[{name[1:]}]" if name.startswith("W") and name[1:].isdigit() else name


def _s_palette(s_values) -> dict:
    vals = sorted({_norm(v) for v in s_values if pd.notna(v)})
    colors = sns.color_palette("viridis", n_colors=max(len(vals), 1))
    return {v: colors[i] for i, v in enumerate(vals)}


def _figure(nrows: int, ncols: int, panel_w: float = PANEL_W, panel_h: float = PANEL_H):
    w = min(panel_w * ncols, MAX_W)
    fig = Figure(figsize=(w, panel_h * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _empty(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _legend(ax) -> None:
    """A small legend, only when something is labelled."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize="x-small", loc="best", framealpha=0.8)


def _median(v: pd.Series) -> float:
    """Median of the finite values (NaN if none)."""
    a = pd.to_numeric(v, errors="coerce").to_numpy(dtype=float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else np.nan


def _positive(v: pd.Series) -> np.ndarray:
    a = pd.to_numeric(v, errors="coerce").to_numpy(dtype=float)
    return np.isfinite(a) & (a > 0)


def _replica_count(df: pd.DataFrame) -> int:
    cols = _present(df, ("experiment", "file", "replica", *ROW_KEYS, "s", "m", "seed"))
    return len(df.drop_duplicates(cols)) if cols else len(df)


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
    rcols = _present(runs, ROW_KEYS)
    rows = _keys(runs, rcols) or [()]
    layers = _layer_order(runs["layer_name"]) if "layer_name" in runs.columns else []
    layers = layers or ["(none)"]
    pal = _s_palette(runs["s"] if "s" in runs.columns else [])
    varying = _varying(runs, rcols)
    status = runs["status"] if "status" in runs.columns else pd.Series("", index=runs.index)
    diverged = runs[status == DIVERGED]
    n_div = _replica_count(diverged) if len(diverged) else 0

    lookup: dict[tuple, float] = {}
    skeys = [c for c in (*ROW_KEYS, "layer_name", "s") if slopes is not None and c in slopes]
    skeys = [c for c in skeys if c in runs.columns]
    if slopes is not None and len(slopes) and "slope" in slopes.columns:
        for r in slopes.itertuples(index=False):
            k = tuple(_norm(getattr(r, c)) for c in skeys)
            lookup.setdefault(k, float(r.slope))

    with _style():
        fig, axes = _figure(len(rows), len(layers))
        for i, rkey in enumerate(rows):
            for j, lname in enumerate(layers):
                ax = axes[i, j]
                sub = _select(runs, rcols, rkey)
                if "layer_name" in sub.columns:
                    sub = sub[sub["layer_name"].astype(str) == lname]
                head = f"{_label(rcols, rkey, varying)} — {_layer_math(lname)}".strip(" —")
                ax.set_title(head, fontsize="small")
                if sub.empty or not _positive(sub[ycol]).any():
                    _empty(ax)
                    continue
                for s_val in sorted({_norm(v) for v in sub["s"].dropna()}):
                    d = _select(sub, ["s"], (s_val,))
                    d = d[_positive(d[ycol])]
                    color = pal[s_val]
                    bad = (
                        d["status"] == DIVERGED
                        if "status" in d.columns
                        else pd.Series(False, index=d.index)
                    )
                    good = d[~bad]
                    if bad.any():
                        ax.scatter(
                            d.loc[bad, "m"],
                            d.loc[bad, ycol],
                            marker="x",
                            s=28,
                            color=color,
                            linewidths=1.0,
                        )
                    if good.empty:
                        continue
                    ax.scatter(good["m"], good[ycol], s=9, color=color, alpha=0.35, linewidths=0)
                    gm = np.exp(np.log(good[ycol].astype(float)).groupby(good["m"]).mean())
                    ctx = dict(zip([*rcols, "layer_name", "s"], (*rkey, lname, s_val)))
                    k = tuple(_norm(ctx[c]) for c in skeys)
                    slope = lookup.get(k, np.nan)
                    label = f"s={_s(s_val)}" + (
                        f": slope {_num(slope)}" if slopes is not None else ""
                    )
                    ax.plot(
                        gm.index,
                        gm.to_numpy(),
                        marker="o",
                        ms=3.5,
                        lw=1.3,
                        color=color,
                        label=label,
                    )
                ax.set_xscale("log", base=2)
                ax.set_yscale("log")
                ax.set_xlabel(M_LABEL)
                ax.set_ylabel(ylabel.format(layer=_layer_math(lname)))
                _legend(ax)
        const = _constant_label(runs, rcols)
        _suptitle(
            fig,
            f"{title}{' (' + const + ')' if const and varying else ''}\n"
            f"lines: geometric mean over seeds; dots: seeds; x: diverged replicas, excluded from "
            f"means and fits ({n_div} diverged)",
            fontsize="medium",
        )
        _save(fig, out_pdf, out_png)


def plot_theta_lazy_rd(
    runs: pd.DataFrame,
    exponents: pd.DataFrame,
    out_pdf: str | Path,
    out_png: str | Path | None = None,
) -> None:
    """A1 ``theta_lazy_rd``: ``RD_final(W[l])`` against ``m`` on log–log axes, one line per
    ``s`` (geometric mean over non-diverged seeds, dots per seed, 'x' for diverged replicas and
    their count in the title), panels rows = (scheme, activation, depth), columns = layer; the
    legend gives the fitted slopes of ``exponents`` (:func:`~lazyphase.analysis.fit_exponents`).
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
    :func:`~lazyphase.analysis.fit_exponents` (``y = gram_drift``, no bootstrap)."""
    by = _present(runs, FIT_BY)
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
    interval (shaded) from :func:`~lazyphase.analysis.thresholds`, or "no crossing"."""
    rcols = _present(exponents, ("scheme",))
    ccols = _present(exponents, ("activation", "depth"))
    rows = _keys(exponents, rcols) or [()]
    cols = _keys(exponents, ccols) or [()]
    layers = _layer_order(exponents["layer_name"]) if "layer_name" in exponents else ["(all)"]
    colors = sns.color_palette("deep", n_colors=max(len(layers), 1))
    lcolor = dict(zip(layers, colors))
    tcols = [c for c in (*rcols, *ccols, "layer_name") if c in thresholds.columns]
    s_all = pd.to_numeric(exponents.get("s", pd.Series(dtype=float)), errors="coerce")
    span = float(s_all.max() - s_all.min()) if s_all.notna().any() else 1.0
    span = span if span > 0 else 1.0

    with _style():
        fig, axes = _figure(len(rows), len(cols), panel_w=4.6, panel_h=3.4)
        for i, rkey in enumerate(rows):
            for j, ckey in enumerate(cols):
                ax = axes[i, j]
                sub = _select(_select(exponents, rcols, rkey), ccols, ckey)
                ax.set_title(
                    ", ".join(
                        x for x in (_label(rcols, rkey, set()), _label(ccols, ckey, set())) if x
                    ),
                    fontsize="small",
                )
                if sub.empty or not np.isfinite(sub["slope"].to_numpy(float)).any():
                    _empty(ax)
                    continue
                present = _layer_order(sub["layer_name"]) if "layer_name" in sub else ["(all)"]
                no_cross = []
                for k, lname in enumerate(present):
                    d = sub[sub["layer_name"].astype(str) == lname] if "layer_name" in sub else sub
                    d = d.sort_values("s")
                    y = d["slope"].to_numpy(float)
                    lo = np.clip(y - d["ci_low"].to_numpy(float), 0, None)
                    hi = np.clip(d["ci_high"].to_numpy(float) - y, 0, None)
                    yerr = np.nan_to_num(np.vstack([lo, hi]), nan=0.0)
                    dx = (k - (len(present) - 1) / 2) * 0.012 * span
                    ok = np.isfinite(y)
                    color = lcolor.get(lname, "k")
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
                            label=f"{_layer_math(lname)}",
                        )
                    ctx = dict(zip([*rcols, *ccols, "layer_name"], (*rkey, *ckey, lname)))
                    tr = _select(thresholds, tcols, tuple(_norm(ctx[c]) for c in tcols))
                    star = float(tr["s_star"].iloc[0]) if len(tr) else np.nan
                    if np.isfinite(star):
                        slo, shi = (float(tr[c].iloc[0]) for c in ("s_star_low", "s_star_high"))
                        if np.isfinite(slo) and np.isfinite(shi):
                            ax.axvspan(slo, shi, color=color, alpha=0.15, lw=0)
                        ax.axvline(
                            star,
                            color=color,
                            ls=":",
                            lw=1.4,
                            label=f"s* ({_layer_math(lname)}) = {_num(star)} "
                            f"[{_num(slo)}, {_num(shi)}]",
                        )
                    else:
                        no_cross.append(_layer_math(lname))
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
                _legend(ax)
        _suptitle(
            fig,
            "A2 regime exponent against s (< 0 lazy, ≈ 0 critical, > 0 condensed)\n"
            "bars: bootstrap interval over seeds; dotted line and band: crossing s* and its "
            "bootstrap interval",
            fontsize="medium",
        )
        _save(fig, out_pdf, out_png)


# ----------------------------------------------------------------------------- A3
def _seed_median(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Seed-median ``R(t)``: each seed's ``log R`` interpolated on the union of the snapshot
    times (held at its last value after the seed stopped), then the median over seeds."""
    curves = []
    for _, g in d.groupby("seed", sort=True) if "seed" in d else [(0, d)]:
        g = g.sort_values("t")
        ok = _positive(g["train_loss"]) & np.isfinite(g["t"].to_numpy(float))
        if ok.sum() >= 1:
            curves.append((g["t"].to_numpy(float)[ok], np.log(g["train_loss"].to_numpy(float)[ok])))
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
    replicas left out), panels rows = scheme, columns = (activation, depth). Dashed: the
    linearized prediction ``R0 · exp(−2 λ_min(Θ0) t / n)`` (seed medians of ``R0``, ``λ_min``,
    ``n``); dotted, when ``traj`` has a column ``lambda_min_limit`` (on the scale of ``Θ0``): the
    same with the limiting kernel's eigenvalue. The legend gives measured/predicted initial rate
    (:func:`~lazyphase.analysis.measured_decay_rate` over :func:`~lazyphase.analysis.linearized_rate`).
    """
    rcols = _present(traj, ("scheme",))
    ccols = _present(traj, ("activation", "depth"))
    rows = _keys(traj, rcols) or [()]
    cols = _keys(traj, ccols) or [()]
    pal = _s_palette(traj["s"] if "s" in traj.columns else [])
    has_limit = "lambda_min_limit" in traj.columns
    status = traj["status"] if "status" in traj.columns else pd.Series("", index=traj.index)
    n_div = _replica_count(traj[status == DIVERGED]) if (status == DIVERGED).any() else 0
    kept = traj[status != DIVERGED]

    with _style():
        fig, axes = _figure(len(rows), len(cols), panel_w=4.6, panel_h=3.4)
        for i, rkey in enumerate(rows):
            for j, ckey in enumerate(cols):
                ax = axes[i, j]
                sub = _select(_select(kept, rcols, rkey), ccols, ckey)
                m_used = m if m is not None else (sub["m"].max() if len(sub) else None)
                if m_used is not None and pd.notna(m_used):
                    sub = sub[sub["m"] == m_used]
                title = ", ".join(
                    x for x in (_label(rcols, rkey, set()), _label(ccols, ckey, set())) if x
                )
                ax.set_title(f"{title}, m={m_used}", fontsize="small")
                if sub.empty or not _positive(sub["train_loss"]).any():
                    _empty(ax)
                    continue
                ymin, ymax = np.inf, -np.inf
                for s_val in sorted({_norm(v) for v in sub["s"].dropna()}):
                    d = _select(sub, ["s"], (s_val,))
                    grid, med = _seed_median(d)
                    if grid.size == 0:
                        continue
                    color = pal[s_val]
                    first = d.sort_values("t").groupby("seed" if "seed" in d else "s").first()
                    r0 = _median(first["train_loss"])
                    lam = _median(first["lambda_min_theta0"])
                    n = _median(first["n"])
                    pred = float(linearized_rate(lam, n))
                    ratio = (
                        measured_decay_rate(d) / pred if np.isfinite(pred) and pred > 0 else np.nan
                    )
                    label = f"s={_s(s_val)}" + (
                        f": rate ×{_num(ratio)}" if np.isfinite(ratio) else ""
                    )
                    ax.plot(grid, med, color=color, lw=1.5, label=label)
                    ymin, ymax = min(ymin, med.min()), max(ymax, med.max())
                    if np.isfinite(r0) and np.isfinite(lam) and np.isfinite(n):
                        ax.plot(
                            grid,
                            loss_decay_prediction(grid, r0, lam, n),
                            color=color,
                            ls="--",
                            lw=1.0,
                        )
                    if has_limit:
                        lim = _median(first["lambda_min_limit"])
                        if np.isfinite(lim) and np.isfinite(r0):
                            ax.plot(
                                grid,
                                loss_decay_prediction(grid, r0, lim, n),
                                color=color,
                                ls=":",
                                lw=1.0,
                            )
                if not np.isfinite(ymin):
                    _empty(ax)
                    continue
                ax.set_yscale("log")
                ax.set_ylim(ymin / 3.0, ymax * 3.0)
                ax.set_xlabel(T_LABEL)
                ax.set_ylabel("training loss R(t)")
                handles, labels = ax.get_legend_handles_labels()
                styles = [("-", "seed median"), ("--", "R0·exp(−2 λ_min(Θ0) t / n)")]
                if has_limit:
                    styles.append((":", "same with limiting kernel λ_min"))
                for ls, text in styles:
                    handles.append(Line2D([], [], color="0.3", ls=ls))
                    labels.append(text)
                ax.legend(handles, labels, fontsize="x-small", loc="best", framealpha=0.8)
        _suptitle(
            fig,
            "A3 loss decay against the linearized dynamics (log R vs t); "
            f"{n_div} diverged replicas left out\n"
            "legend: measured initial rate −d log R/dt (R/R0 > 1e-2) ÷ predicted 2 λ_min(Θ0)/n",
            fontsize="medium",
        )
        _save(fig, out_pdf, out_png)


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
    :func:`~lazyphase.concentration.summarize`: columns ``slope, ci_low, ci_high``). Bottom row:
    the fraction of draws with ``λ_min(G[l]) ≥ ¾ λ_S`` against ``m`` (log x), one line per layer
    (``summary['frac_ok']``; recomputed from ``table['ok']`` when ``summary`` lacks it).
    """
    missing = [c for c in ("m", "layer_name", "rel_error") if c not in table.columns]
    if missing:
        raise KeyError(f"table lacks the column(s) {missing}")
    pcols = _present(table, ROW_KEYS)
    panels = _keys(table, pcols) or [()]
    layers = _layer_order(table["layer_name"]) or ["(none)"]
    lcolor = dict(zip(layers, sns.color_palette("deep", n_colors=max(len(layers), 1))))
    scols = [c for c in (*pcols, "layer_name") if c in summary.columns]
    has_frac = "frac_ok" in summary.columns and "m" in summary.columns

    with _style():
        fig, axes = _figure(2, len(panels), panel_w=4.0, panel_h=3.3)
        for j, pkey in enumerate(panels):
            ax, bx = axes[0, j], axes[1, j]
            sub = _select(table, pcols, pkey)
            head = _label(pcols, pkey, set())
            lam_s = _median(sub["lambda_S"]) if "lambda_S" in sub.columns else np.nan
            ax.set_title(head, fontsize="small")
            btitle = f"{head}, λ_S = {lam_s:.3g}" if np.isfinite(lam_s) else head
            bx.set_title(btitle, fontsize="small")
            if sub.empty or not _positive(sub["rel_error"]).any():
                _empty(ax)
                _empty(bx)
                continue
            first_medians = []
            m_all = np.sort(pd.to_numeric(sub["m"], errors="coerce").dropna().unique())
            for lname in _layer_order(sub["layer_name"]):
                d = sub[sub["layer_name"].astype(str) == lname]
                d = d[_positive(d["rel_error"])]
                if d.empty:
                    continue
                color = lcolor.get(lname, "k")
                ax.scatter(d["m"], d["rel_error"], s=8, color=color, alpha=0.25, linewidths=0)
                med = d.groupby("m")["rel_error"].median().sort_index()
                first_medians.append(float(med.iloc[0]))
                ctx = dict(zip([*pcols, "layer_name"], (*pkey, lname)))
                fit = _select(summary, scols, tuple(_norm(ctx[c]) for c in scols))
                label = _layer_math(lname)
                if len(fit) and "slope" in fit.columns:
                    r = fit.iloc[0]
                    label += f": slope {_num(float(r['slope']))}"
                    if {"ci_low", "ci_high"} <= set(fit.columns):
                        label += f" [{_num(float(r['ci_low']))}, {_num(float(r['ci_high']))}]"
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
                    bx.plot(mx, fy, label=_layer_math(lname), **style)
            if first_medians and m_all.size >= 2:
                anchor = float(np.exp(np.mean(np.log(first_medians))))
                ref = anchor * np.sqrt(m_all[0] / m_all)
                ax.plot(m_all, ref, ls="--", color="0.2", lw=1.0, label="slope −½ (reference)")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(M_LABEL)
            ax.set_ylabel("‖G[l](θ0) − K[l]‖_F / ‖K[l]‖_F")
            _legend(ax)
            bx.set_xscale("log", base=2)
            bx.set_ylim(-0.05, 1.05)
            bx.axhline(1.0, color="0.6", lw=0.8)
            bx.set_xlabel(M_LABEL)
            bx.set_ylabel("fraction of draws with λ_min(G[l]) ≥ ¾ λ_S")
            if bx.get_legend_handles_labels()[0]:
                bx.legend(fontsize="x-small", loc="lower right", framealpha=0.8)
            else:
                _empty(bx)
        n_draws = table["seed"].nunique() if "seed" in table.columns else len(table)
        fig.suptitle(
            "A4 concentration of the per-layer Gram at initialization, "
            "G[l] = (m β_l²/κ²) Θ[l] against its limit K[l]\n"
            f"top: relative Frobenius error (line: median over {n_draws} draws, dots: draws; "
            "legend: fitted slope of log error vs log m, bootstrap interval); "
            "bottom: λ_min(G[l]) ≥ ¾ λ_S, λ_S = min_l λ_min(K[l])",
            fontsize="medium",
        )
        _save(fig, out_pdf, out_png)
