"""The C1–C8 figures (Chizat, Oyallon & Bach 2019 and the Note) from the aggregated tables.

Each ``plot_*`` writes a PDF and a PNG with matplotlib's ``Figure`` (no pyplot) in the seaborn
style of :mod:`lazyphase.studies.plotting`; the analyses they draw (level-line fit, landscape,
neuron paths) are in :mod:`lazyphase.studies.chizat.analysis`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lazyphase.studies.chizat.analysis import (
    C6_CONVENTIONS,
    SCALING,
    alpha_tau_fit,
    alpha_tau_grid,
    c6_convention,
    mean_std,
    one_row_per_replica,
)
from lazyphase.studies.plotting import (
    drop_empty_axes,
    figure_legend,
    key_line,
    plotted,
    suptitle,
)

log = logging.getLogger("lazyphase.chizat")
TAU_LABEL = r"init scale $\tau$ (std of both layers)"
TEST_LABEL = r"test loss $R_\mathrm{test}$"


def _fig(n_rows: int, n_cols: int, w: float = 4.4, h: float = 3.4) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(w * n_cols, h * n_rows + 0.9), layout="constrained")
    axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False))
    return fig, axes


def _band(ax, tab: pd.DataFrame, x: str, color, label: str, ls: str = "-") -> None:
    tab = tab.sort_values(x)
    ax.plot(tab[x], tab["mean"], color=color, ls=ls, marker="o", ms=3, lw=1.4, label=label)
    lo = np.maximum(tab["mean"] - tab["std"], tab["mean"] * 0.05)
    ax.fill_between(tab[x], lo, tab["mean"] + tab["std"], color=color, alpha=0.15, lw=0)


#: Centering → the words of the labels.
_CENTERING = {
    "none": "non-symmetrized init",
    "symmetric": "symmetrized init (f₀ = 0)",
    "subtract_initial": "f − f₀ trained (f₀ frozen)",
}
#: step_on → what the GD steps act on (the suptitles).
_STEP_ON = {
    "F_alpha": "on $F_A = R(Ah)/A^2$",
    "R": "on R",
    "mean_field": "on the mean-field time scale (step on R = η/A)",
}


def _centering_label(c: str) -> str:
    return _CENTERING.get(c, str(c))


def _values(df: pd.DataFrame, col: str, fmt: str = "g") -> str:
    """The distinct non-missing values of ``col`` as ``7`` or ``5, 7`` ("" if none or absent)."""
    if col not in df.columns:
        return ""
    vals = sorted(df[col].dropna().unique())
    return ", ".join(format(v, fmt) if isinstance(v, (int, float, np.number)) else str(v)
                     for v in vals)  # fmt: skip


def _join(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def _setting(df: pd.DataFrame, col: str, name: str | None = None) -> str:
    """``name=values`` of :func:`_values` ("" when ``df`` has no value of ``col``)."""
    vals = _values(df, col)
    return f"{name or col}={vals}" if vals else ""


def _centering_text(df: pd.DataFrame) -> str:
    """The centerings of ``df`` in words ("" when it has no ``centering`` column)."""
    if "centering" not in df.columns:
        return ""
    return ", ".join(_centering_label(c) for c in sorted(df["centering"].dropna().unique()))


def _step_on_text(df: pd.DataFrame) -> str:
    """What the GD steps of ``df`` act on ("" when ``step_on`` is absent)."""
    if "step_on" not in df.columns:
        return ""
    return ", ".join(_STEP_ON.get(s, f"on {s}") for s in sorted(df["step_on"].dropna().unique()))


def _eta_from_step_on_r(df: pd.DataFrame, step_r) -> np.ndarray:
    """The step rule's ``η`` from the step actually taken on ``R`` (``lr0``, or ``t/step``):
    ``η = step_R · A²`` (``step_on: F_alpha``), ``· A`` (``mean_field``), ``· 1`` (``R``), with
    ``A = chizat_multiplier`` (:func:`lazyphase.core.train.objective_divisor`); NaN where a
    column is missing."""
    step_r = np.asarray(step_r, dtype=float)
    if not {"step_on", "chizat_multiplier"} <= set(df.columns):
        return np.full(len(df), np.nan)
    mult = pd.to_numeric(df["chizat_multiplier"], errors="coerce").to_numpy(float)
    on = df["step_on"].to_numpy()
    factor = np.select(
        [on == "F_alpha", on == "mean_field", on == "R"], [mult**2, mult, 1.0], np.nan
    )
    return step_r * factor


def _lr_cap(df: pd.DataFrame, uncapped: np.ndarray) -> float | None:
    """The cap ``lr_max`` of a ``min(lr_max, …)`` step rule as the runs show it: the median
    ``η`` of the runs whose ``η`` (from ``lr0``) is below the uncapped value; ``None`` when no
    run is capped, NaN when ``η`` cannot be derived (``lr_max`` is not a column of the table)."""
    if "lr0" not in df.columns:
        return np.nan
    eta = _eta_from_step_on_r(df, pd.to_numeric(df["lr0"], errors="coerce"))
    if not (np.isfinite(eta).all() and np.isfinite(uncapped).all()):
        return np.nan
    capped = eta < np.asarray(uncapped, dtype=float) * (1 - 1e-6)
    return float(np.median(eta[capped])) if capped.any() else None


def _capped_rule(cap: float | None, rule: str) -> str:
    """``η = min(cap, rule)``; ``η = rule`` when no run reached the cap; ``η_max`` when unknown."""
    if cap is None:
        return f"η = {rule} (cap not reached)"
    return f"η = min({cap:g}, {rule})" if np.isfinite(cap) else f"η = min(η_max, {rule})"


def _policy_label(df: pd.DataFrame) -> str:
    """The step rule of the runs ``df`` (one ``lr_policy``), its constants read from the table."""
    row = df.iloc[0]
    tau = pd.to_numeric(df["tau"], errors="coerce").to_numpy(float)
    if row["lr_policy"] == "chizat":
        return _capped_rule(_lr_cap(df, df["lr_c"].to_numpy(float) / tau**2), f"{row['lr_c']:g}/τ²")
    if row["lr_policy"] == "fixed":
        return f"η = {row['lr']:g} (fixed)"
    if row["lr_policy"] == "width":
        return f"η = {row['lr_c']:g}/m"
    if row["lr_policy"] == "chizat_alpha":
        mult = pd.to_numeric(df["chizat_multiplier"], errors="coerce").to_numpy(float)
        uncapped = df["lr_c"].to_numpy(float) / (tau * mult) ** 2
        return _capped_rule(_lr_cap(df, uncapped), f"{row['lr_c']:g}/(τA)²")
    return str(row["lr_policy"])


def _initial_eta(d: pd.DataFrame) -> float:
    """``η`` of one trajectory from its first snapshot after step 0: ``t/step`` is the mean
    step taken on ``R`` so far (:func:`_eta_from_step_on_r` turns it into ``η``)."""
    d = d[d["step"] > 0].sort_values("step").head(1)
    if d.empty:
        return np.nan
    return float(_eta_from_step_on_r(d, d["t"].to_numpy(float) / d["step"].to_numpy(float))[0])


def plot_tau(runs, out_pdf: str, out_png: str | None = None, *,
             policies: Sequence[str] = ("chizat",)) -> None:  # fmt: skip
    plotted(build_tau, runs, out_pdf=out_pdf, out_png=out_png, policies=policies)


def build_tau(runs: pd.DataFrame, *, policies: Sequence[str] = ("chizat",)) -> Figure:
    """C1 (``policies = [chizat]``) and C7 (all step rules): test loss against ``τ``, end of
    training (solid) and best so far (dotted), mean ± std over trials; one panel per centering,
    one legend below them (the step rules, their constants read from the runs)."""
    df = one_row_per_replica(runs)
    df = df[df["lr_policy"].isin(policies)]
    cents = sorted(df["centering"].unique(), reverse=True)
    colors = dict(zip(sorted(df["lr_policy"].unique()), ["C0", "C3", "C2", "C4"]))
    fig, axes = _fig(1, max(len(cents), 1))
    for ax, cent in zip(axes[0], cents):
        sub = df[df["centering"] == cent]
        for pol, d in sub.groupby("lr_policy"):
            lab = _policy_label(d)
            for col, ls, what in (("test_loss_final", "-", "end"), ("test_loss_best", ":", "best")):
                _band(ax, mean_std(d, ["tau"], col), "tau", colors[pol], f"{what}, {lab}", ls)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(TAU_LABEL)
        ax.set_ylabel(TEST_LABEL)
        n_tr = int(sub.groupby(["tau", "lr_policy"]).size().min())
        ax.set_title(f"{_centering_label(cent)}, {n_tr} trials", fontsize="small")
    what = "C1 test loss vs τ" if list(policies) == ["chizat"] else "C7 step-size rules vs τ"
    steps = f"{int(df['final_step'].max())} GD steps {_step_on_text(df)}".strip() if len(df) else ""
    setting = _join(*(_setting(df, c) for c in ("m", "d", "n")),
                    _setting(df, "chizat_multiplier", "A"))  # fmt: skip
    suptitle(fig, f"{what}: {_join(setting, steps)}")
    figure_legend(fig, ncol=2)
    return drop_empty_axes(fig)


def plot_chizat_tau(runs: pd.DataFrame, out_pdf: str, out_png: str | None = None) -> None:
    """C1: :func:`plot_tau` of the runs with Chizat's step rule."""
    plot_tau(runs, out_pdf, out_png, policies=["chizat"])


def build_chizat_tau(runs: pd.DataFrame) -> Figure:
    return build_tau(runs, policies=["chizat"])


def plot_stepsize(runs: pd.DataFrame, out_pdf: str, out_png: str | None = None) -> None:
    """C7: :func:`plot_tau` with every step rule of the runs side by side."""
    plot_tau(runs, out_pdf, out_png, policies=sorted(runs["lr_policy"].unique()))


def build_stepsize(runs: pd.DataFrame) -> Figure:
    return build_tau(runs, policies=sorted(runs["lr_policy"].unique()))


def plot_width(runs: pd.DataFrame, out_pdf: str, out_png: str | None = None) -> None:
    plotted(build_width, runs, out_pdf=out_pdf, out_png=out_png)


def build_width(runs: pd.DataFrame) -> Figure:
    """C2: test loss (end of training) and relative displacement ``‖Δθ‖/‖θ0‖`` against ``m`` for
    ``A = 1/√m`` and ``A = 1/m``: dots per trial, lines through the means; one legend below."""
    df = one_row_per_replica(runs)
    fig, axes = _fig(1, 2)
    ylabels = (TEST_LABEL, r"$\|\theta(T) - \theta_0\|\,/\,\|\theta_0\|$")
    for ax, col, ylab in zip(axes[0], ("test_loss_final", "rd_total_final"), ylabels):
        for (p, d), color in zip(df.groupby("chizat_alpha_power"), ("C0", "C3")):
            lab = _join(SCALING.get(float(p), f"A = m^−{p:g}"), _policy_label(d))
            ax.scatter(d["m"], d[col], s=10, color=color, alpha=0.5)
            tab = mean_std(d, ["m"], col)
            ax.plot(tab["m"], tab["mean"], color=color, marker="o", ms=3, label=lab)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width $m$")
        ax.set_ylabel(ylab)
    setting = _join(*(_setting(df, c) for c in ("d", "n", "teacher_scale")),
                    _setting(df, "tau", "τ"), _centering_text(df))  # fmt: skip
    trials = df.groupby(["m", "chizat_alpha_power"]).size().min()
    suptitle(fig, f"C2 test loss and displacement vs width: {setting}; "
                  f"{int(df['final_step'].max())} GD steps, {trials} trials")  # fmt: skip
    figure_legend(fig, [*fig.axes[0].get_legend_handles_labels()[0],
                        key_line("one trial", marker="o", ms=3, alpha=0.5)])  # fmt: skip
    return fig


def plot_trajectories(traj: pd.DataFrame, out_pdf: str, out_png: str | None = None) -> None:
    plotted(build_trajectories, traj, out_pdf=out_pdf, out_png=out_png)


def build_trajectories(traj: pd.DataFrame) -> Figure:
    """C5 (the Note's Fig. 1): relative parameter change ``‖θ(t) − θ0‖/‖θ0‖`` and ``log10`` test
    loss against the step, lazy (large τ) against non-lazy (small τ), one line per trial."""
    fig, axes = _fig(1, 2)
    taus = sorted(traj["tau"].unique())
    colors = dict(zip(taus, ("C0", "C3", "C2", "C4")))
    for (tau, seed), d in traj.groupby(["tau", "seed"]):
        d = d.sort_values("step")
        lazy = "lazy" if tau == max(taus) else "non-lazy"
        eta = _initial_eta(d)
        lab = f"τ={tau:g} ({lazy})" + (f", η={eta:.3g}" if np.isfinite(eta) else "")
        lab = lab if seed == traj["seed"].min() else None
        axes[0, 0].plot(d["step"] + 1, d["rd_total"], color=colors[tau], lw=1, label=lab)
        axes[0, 1].plot(d["step"] + 1, np.log10(d["test_loss"]), color=colors[tau], lw=1)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_ylabel(r"$\|\theta(t) - \theta_0\|\,/\,\|\theta_0\|$")
    axes[0, 1].set_ylabel(r"$\log_{10}$ test loss")
    for ax in axes[0]:
        ax.set_xscale("log")
        ax.set_xlabel("GD step + 1")
    setting = _join(_setting(traj, "m"), _setting(traj, "d"), _centering_text(traj))
    patience = _values(traj, "patience")
    stopping = f"early stopping on the test loss (patience {patience} steps)"
    suptitle(fig, f"C5 trajectories, one line per trial: "
                  f"{_join(setting, stopping if patience else '')}")  # fmt: skip
    figure_legend(fig)
    return fig


def plot_alpha_tau(runs: pd.DataFrame, out_pdf: str, out_png: str | None = None) -> None:
    plotted(build_alpha_tau, runs, out_pdf=out_pdf, out_png=out_png)


def build_alpha_tau(runs: pd.DataFrame) -> Figure:
    """C6 (the Note's Fig. 5), one panel per convention present (ours, the Note's): heatmap of
    ``log10`` of the measured quantity over ``(τ, A)`` with the fitted level lines
    ``A τ^q = const`` (white) and the prediction ``q = 2`` (red dashed); the title of each panel
    gives ``q`` with its seed-bootstrap interval and whether the interval holds 2. The two
    conventions measure different quantities, so each panel keeps its own colour bar."""
    conv = c6_convention(runs)
    present = [c for c in C6_CONVENTIONS if (conv == c).any()]
    fig, axes = _fig(1, len(present), w=6.0, h=5.0)
    for ax, name in zip(axes[0], present):
        part = runs[conv == name]
        res = alpha_tau_fit(part)
        _draw_alpha_tau(fig, ax, part, res, name)
        log.info("C6 %s: q = %.3f [%.3f, %.3f] (%d seeds, %.0f%% of resamples fit)",
                 name, res.fit.q, res.q_low, res.q_high, res.n_seeds, 100 * res.fitted)  # fmt: skip
    setting = _join(_setting(runs, "m"), _setting(runs, "d"))
    suptitle(fig, f"C6 over (τ, A), {setting}: level lines $A\\tau^q$ = const, predicted $q$ = 2")
    figure_legend(fig, [key_line("level-line points", marker="o", color="0.4", ms=3),
                        key_line(r"fit $A\tau^q$ = const", color="0.4"),
                        key_line("prediction $q$ = 2", color="r", ls="--")])  # fmt: skip
    return fig


def _q_text(res) -> str:
    if not np.isfinite(res.q_low):
        why = "one seed" if res.n_seeds < 2 else f"only {100 * res.fitted:.0f}% of resamples fit"
        return f"$q$ = {res.fit.q:.2f} (no interval: {why})"
    verdict = "holds 2" if res.contains(2.0) else "excludes 2"
    return (f"$q$ = {res.fit.q:.2f} [{res.q_low:.2f}, {res.q_high:.2f}] ({res.n_seeds} seeds), "
            f"{verdict}")  # fmt: skip


def _c6_title(runs: pd.DataFrame, name: str, res) -> str:
    """The panel title of one C6 convention; "ours" states the step rule the runs used."""
    if name == "ours":
        rule = _policy_label(runs) if {"lr_policy", "tau"} <= set(runs.columns) else ""
        head = _join("ours: final test $R$", rule, "early stopping on $R$")
    else:
        head = r"the Note's C6 loop: $\min_t$ test $F_A = R/A^2$, step $\eta/A^3$ on $R$"
    return f"{head}\n{_q_text(res)}"


def _draw_alpha_tau(fig, ax, runs: pd.DataFrame, res, name: str) -> None:
    lt, la, ll = alpha_tau_grid(runs)
    fit = res.fit
    dt, da = (lt[1] - lt[0]) / 2, (la[1] - la[0]) / 2
    extent = (lt[0] - dt, lt[-1] + dt, la[0] - da, la[-1] + da)
    im = ax.imshow(ll.T, origin="lower", aspect="auto", cmap="viridis", extent=extent)
    label = "final test $R$" if name == "ours" else r"$\min_t$ test $F_A = R/A^2$"
    fig.colorbar(im, ax=ax, label=rf"$\log_{{10}}$ {label} (mean over seeds)")
    xs = np.linspace(lt[0], lt[-1], 50)
    for k in np.flatnonzero(np.isfinite(fit.intercepts)):
        pk = fit.points[fit.points[:, 0] == k]
        ax.plot(pk[:, 1], pk[:, 2], "wo", ms=3)
        ax.plot(xs, fit.intercepts[k] - fit.q * xs, "w-", lw=1.2)
        mid = pk[:, 1].mean()
        ax.plot(xs, fit.intercepts[k] - fit.q * mid - 2 * (xs - mid), "r--", lw=1)
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.set_xlabel(r"$\log_{10}\tau$ (init std of both layers)")
    ax.set_ylabel(r"$\log_{10}A$ (output multiplier)")
    ax.set_title(_c6_title(runs, name, res), fontsize="small")


def plot_landscape(grid, points, out_pdf: str, out_png: str | None = None) -> None:
    plotted(build_landscape, grid, points, out_pdf=out_pdf, out_png=out_png)


def build_landscape(grid: pd.DataFrame, points: pd.DataFrame) -> Figure:
    """C8 (the Note's Figs. 2 and 6): filled contours of ``log10`` test loss on the plane of the
    two principal directions of the solutions (±3 std around their mean), solutions marked; rows
    ``A = 1/√m``, ``A = 1/m``, columns ``m``. One colour scale (the same levels) and one colour
    bar for all panels, so that they can be compared."""
    ms = sorted(grid["m"].unique())
    pows = sorted(grid["chizat_alpha_power"].unique())
    z = np.log10(grid["test_loss"].to_numpy(float))
    z = z[np.isfinite(z)]
    levels = np.linspace(z.min(), z.max(), 15) if z.size and np.ptp(z) > 0 else 14
    fig, axes = _fig(len(pows), len(ms), w=3.4, h=3.2)
    cs = None
    for i, p in enumerate(pows):
        for j, m in enumerate(ms):
            g = grid[(grid["m"] == m) & (grid["chizat_alpha_power"] == p)]
            pt = points[(points["m"] == m) & (points["chizat_alpha_power"] == p)]
            if g.empty or pt.empty:
                continue  # no such (A, m): the empty axes is dropped
            cs = _draw_landscape_panel(axes[i, j], g, pt, levels)
            axes[i, j].set_title(f"{SCALING.get(float(p), p)}, $m$ = {m}", fontsize="small")
    drop_empty_axes(fig)
    if cs is not None:
        fig.colorbar(cs, ax=fig.axes, shrink=0.8, format="%.2g", label=r"$\log_{10}$ test loss")
    suptitle(fig, "C8 test loss on the plane of the two principal directions of the solutions")
    figure_legend(fig, [key_line("solutions (one per seed)", marker="x", color="r"),
                        key_line("their mean (origin)", marker="+", color="k", ms=8)])  # fmt: skip
    return fig


def _draw_landscape_panel(ax, g: pd.DataFrame, pt: pd.DataFrame, levels):
    """One (A, m) landscape, coordinates in units of the solutions' std along each direction."""
    su, sv = pt["sigma_u"].iloc[0], pt["sigma_v"].iloc[0]
    piv = g.pivot(index="i", columns="j", values="test_loss").to_numpy()
    u = np.sort(g["u"].unique()) / su
    v = np.sort(g["v"].unique()) / sv
    cs = ax.contourf(u, v, np.log10(piv).T, levels=levels, cmap="viridis")
    ax.scatter(pt["u"] / su, pt["v"] / sv, c="r", s=14, marker="x")
    ax.plot([0], [0], "k+", ms=8, mew=1.5)
    ax.set_xlabel(r"PC1 / std of the solutions")
    ax.set_ylabel(r"PC2 / std of the solutions")
    return cs


def plot_cover(cover: pd.DataFrame, teacher: pd.DataFrame, out_pdf: str, out_png=None) -> None:
    plotted(build_cover, cover, teacher, out_pdf=out_pdf, out_png=out_png)


def build_cover(cover: pd.DataFrame, teacher: pd.DataFrame) -> Figure:
    """C4 (Chizat et al.'s Fig. 1): paths of ``|a_j| b_j`` in the plane, red ``a_j > 0``, blue
    ``a_j < 0``, open circles at init and dots at the end, teacher directions as dashed rays
    coloured by the sign of their output weight; one panel per τ, one legend below."""
    taus = sorted(cover["tau"].unique())
    seed = cover["seed"].min()
    fig, axes = _fig(1, len(taus), w=4.2, h=4.2)
    for ax, tau in zip(axes[0], taus):
        d = cover[(cover["tau"] == tau) & (cover["seed"] == seed)]
        t = teacher[(teacher["tau"] == tau) & (teacher["seed"] == seed)]
        _draw_cover_panel(ax, d, t)
        regime = "lazy" if tau == max(taus) else "non-lazy"
        ax.set_title(f"$\\tau$ = {tau:g} ({regime})", fontsize="small")
    suptitle(fig, f"C4 neuron paths $|a_j|\\,b_j$ over {int(cover['step'].max())} GD steps "
                  f"(seed {seed})")  # fmt: skip
    figure_legend(fig, [
        key_line("path, $a_j > 0$", color="C3"), key_line("path, $a_j < 0$", color="C0"),
        key_line("start (initialization)", marker="o", mfc="w", ms=4),
        key_line("end of training", marker="o", ms=3),
        key_line("teacher neuron direction", ls="--"),
    ], ncol=5)  # fmt: skip
    return fig


def _draw_cover_panel(ax, d: pd.DataFrame, t: pd.DataFrame) -> None:
    lim = 1.2 * max(np.abs(d[["x1", "x2"]].to_numpy()).max(), 1e-12)
    for row in t.itertuples():
        col = "C3" if row.sign > 0 else "C0"
        ax.plot([0, lim * row.x1], [0, lim * row.x2], "--", color=col, lw=1.0, alpha=0.7)
    for _, nd in d.groupby("neuron"):
        nd = nd.sort_values("step")
        col = "C3" if nd["sign"].iloc[0] > 0 else "C0"
        ax.plot(nd["x1"], nd["x2"], color=col, lw=1)
        ax.plot(nd["x1"].iloc[0], nd["x2"].iloc[0], "o", mfc="w", mec=col, ms=4)
        ax.plot(nd["x1"].iloc[-1], nd["x2"].iloc[-1], "o", color=col, ms=3)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel(r"$|a_j|\,b_{j,1}$")
    ax.set_ylabel(r"$|a_j|\,b_{j,2}$")


def plot_population(runs: pd.DataFrame, out_pdf: str, out_png: str | None = None) -> None:
    plotted(build_population, runs, out_pdf=out_pdf, out_png=out_png)


def build_population(runs: pd.DataFrame) -> Figure:
    """C3: population-SGD loss averaged over the last steps, normalized by its maximum over τ,
    against τ (mean ± std over trials)."""
    df = one_row_per_replica(runs)
    tab = mean_std(df, ["tau"], "tail_train_loss")
    scale = tab["mean"].max()
    tab[["mean", "std"]] = tab[["mean", "std"]] / scale
    fig, axes = _fig(1, 1, w=5.6, h=3.8)
    ax = axes[0, 0]
    batch = _values(df, "batch_size")
    _band(ax, tab, "tau", "C0", f"fresh batches of {batch} points" if batch else "fresh batches")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(TAU_LABEL)
    ax.set_ylabel(r"population loss / max over $\tau$")
    n_div = int((df["status"] == "diverged").sum()) if "status" in df.columns else 0
    setting = _join(_setting(df, "m"), _setting(df, "d"), _setting(df, "chizat_multiplier", "A"))
    suptitle(fig, f"C3 population SGD: {setting}; {int(df['final_step'].max())} steps, "
                  f"{int(df.groupby('tau').size().min())} trials, {n_div} diverged")  # fmt: skip
    figure_legend(fig, [*ax.get_legend_handles_labels()[0],
                        key_line("± std over trials", color="C0", lw=6, alpha=0.2)])  # fmt: skip
    return fig
