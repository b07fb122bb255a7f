"""A3 ``loss_decay``: the seed-median training loss ``R(t)`` per ``s`` against the exact
linearized loss, panels rows = scheme, columns = (activation, depth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lazyphase.studies.plotting import (
    T_LABEL,
    drop_empty_axes,
    figure_legend,
    fmt_s,
    fmt_sci,
    key_line,
    legend_right,
    norm_key,
    panel_grid,
    plotted,
    positive_mask,
    s_styles,
    select_rows,
    suptitle,
)
from lazyphase.studies.theta_lazy.figures.common import SchemeByArch, diverged_split


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
    facets = SchemeByArch(traj)  # the facets of every replica, the diverged ones included
    styles = s_styles(traj["s"] if "s" in traj.columns else [])
    has_lin = "train_loss_lin" in traj.columns
    kept, n_div = diverged_split(traj)
    fig, axes = panel_grid(len(facets.rows), len(facets.cols), panel_w=6.0, panel_h=3.4)
    for i, j, sub, title, _ in facets.panels(kept):
        m_used = m if m is not None else (sub["m"].max() if len(sub) else None)
        if m_used is not None and pd.notna(m_used):
            sub = sub[sub["m"] == m_used]
        axes[i, j].set_title(f"{title}, $m$ = {m_used}", fontsize="small")
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
