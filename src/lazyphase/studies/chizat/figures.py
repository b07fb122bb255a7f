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
from lazyphase.studies.plotting import plot_style, save, suptitle

log = logging.getLogger("lazyphase.chizat")
TAU_LABEL = "init scale τ (std of both layers, log scale)"
TEST_LABEL = "test loss R_test (log scale)"


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
    "F_alpha": "on F_A = R(A h)/A²",
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


def plot_tau(
    runs: pd.DataFrame, out_pdf: str, out_png: str, *, policies: Sequence[str] = ("chizat",)
) -> None:
    """C1 (``policies = [chizat]``) and C7 (all step rules): test loss against ``τ``, end of
    training (solid) and best so far (dotted), mean ± std over trials; one panel per centering."""
    df = one_row_per_replica(runs)
    df = df[df["lr_policy"].isin(policies)]
    cents = sorted(df["centering"].unique(), reverse=True)
    colors = dict(zip(sorted(df["lr_policy"].unique()), ["C0", "C3", "C2", "C4"]))
    with plot_style():
        fig, axes = _fig(1, len(cents))
        for ax, cent in zip(axes[0], cents):
            sub = df[df["centering"] == cent]
            for pol, d in sub.groupby("lr_policy"):
                lab = _policy_label(d)
                for col, ls, what in (
                    ("test_loss_final", "-", "end"),
                    ("test_loss_best", ":", "best"),
                ):
                    _band(ax, mean_std(d, ["tau"], col), "tau", colors[pol], f"{what}, {lab}", ls)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(TAU_LABEL)
            ax.set_ylabel(TEST_LABEL)
            n_tr = int(sub.groupby(["tau", "lr_policy"]).size().min())
            ax.set_title(f"{_centering_label(cent)}, {n_tr} trials", fontsize="small")
            ax.legend(fontsize="x-small")
        what = (
            "C1 test loss vs τ"
            if list(policies) == ["chizat"]
            else "C7 step-size rule vs fixed step"
        )
        steps = f"{int(df['final_step'].max())} GD steps {_step_on_text(df)}".strip()
        setting = _join(
            *(_setting(df, c) for c in ("m", "d", "n")), _setting(df, "chizat_multiplier", "A")
        )
        suptitle(fig, f"{what}: {_join(setting, steps)}")
        save(fig, out_pdf, out_png)


def plot_chizat_tau(runs: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C1: :func:`plot_tau` of the runs with Chizat's step rule."""
    plot_tau(runs, out_pdf, out_png, policies=["chizat"])


def plot_stepsize(runs: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C7: :func:`plot_tau` with every step rule of the runs side by side."""
    plot_tau(runs, out_pdf, out_png, policies=sorted(runs["lr_policy"].unique()))


def plot_width(runs: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C2: test loss (end of training) and relative displacement ``‖Δθ‖/‖θ0‖`` against ``m`` for
    ``A = 1/√m`` and ``A = 1/m``: dots per trial, lines through the means."""
    df = one_row_per_replica(runs)
    with plot_style():
        fig, axes = _fig(1, 2)
        for k, (col, ylab) in enumerate(
            (("test_loss_final", TEST_LABEL), ("rd_total_final", "‖θ(T) − θ0‖ / ‖θ0‖ (log scale)"))
        ):
            ax = axes[0, k]
            for (p, d), color in zip(df.groupby("chizat_alpha_power"), ("C0", "C3")):
                lab = SCALING.get(float(p), f"A = m^−{p:g}") + f", {_policy_label(d)}"
                ax.scatter(d["m"], d[col], s=10, color=color, alpha=0.5)
                tab = mean_std(d, ["m"], col)
                ax.plot(tab["m"], tab["mean"], color=color, marker="o", ms=3, label=lab)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("width m (log scale)")
            ax.set_ylabel(ylab)
            ax.legend(fontsize="x-small")
        setting = _join(
            _setting(df, "d"),
            _setting(df, "n"),
            _setting(df, "teacher_scale"),
            _setting(df, "tau", "τ"),
            _centering_text(df),
        )
        suptitle(
            fig,
            f"C2 test loss vs width: {setting}, {int(df['final_step'].max())} GD steps, "
            f"{df.groupby(['m', 'chizat_alpha_power']).size().min()} trials",
        )
        save(fig, out_pdf, out_png)


def plot_trajectories(traj: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C5 (the Note's Fig. 1): relative parameter change ``‖θ(t) − θ0‖/‖θ0‖`` and ``log10`` test
    loss against the step, lazy (large τ) against non-lazy (small τ), one line per trial."""
    with plot_style():
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
            axes[0, 1].plot(
                d["step"] + 1, np.log10(d["test_loss"]), color=colors[tau], lw=1, label=lab
            )
        axes[0, 0].set_yscale("log")
        axes[0, 0].set_ylabel("‖θ(t) − θ0‖ / ‖θ0‖ (log scale)")
        axes[0, 1].set_ylabel("log10 test loss")
        for ax in axes[0]:
            ax.set_xscale("log")
            ax.set_xlabel("GD step + 1 (log scale)")
            ax.legend(fontsize="x-small")
        setting = _join(_setting(traj, "m"), _setting(traj, "d"), _centering_text(traj))
        patience = _values(traj, "patience")
        stopping = f"early stopping on the test loss (patience {patience} steps)"
        suptitle(fig, f"C5 trajectories: {_join(setting, stopping if patience else '')}")
        save(fig, out_pdf, out_png)


def plot_alpha_tau(runs: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C6 (the Note's Fig. 5), one panel per convention present (ours, the Note's): heatmap of
    ``log10`` of the measured quantity over ``(τ, A)`` with the fitted level lines
    ``A τ^q = const`` (white) and the prediction ``q = 2`` (red dashed); the title of each panel
    gives ``q`` with its seed-bootstrap interval and whether the interval holds 2."""
    conv = c6_convention(runs)
    present = [c for c in C6_CONVENTIONS if (conv == c).any()]
    with plot_style():
        fig, axes = _fig(1, len(present), w=6.0, h=5.0)
        for ax, name in zip(axes[0], present):
            part = runs[conv == name]
            res = alpha_tau_fit(part)
            _draw_alpha_tau(fig, ax, part, res, name)
            log.info("C6 %s: q = %.3f [%.3f, %.3f] (%d seeds, %.0f%% of resamples fit)",
                     name, res.fit.q, res.q_low, res.q_high, res.n_seeds, 100 * res.fitted)  # fmt: skip
        setting = _join(_setting(runs, "m"), _setting(runs, "d"))
        suptitle(fig, f"C6 over (τ, A), {setting}: level lines A τ^q = const, predicted q = 2")
        save(fig, out_pdf, out_png)


def _q_text(res) -> str:
    if not np.isfinite(res.q_low):
        why = "one seed" if res.n_seeds < 2 else f"only {100 * res.fitted:.0f}% of resamples fit"
        return f"q = {res.fit.q:.2f} (no interval: {why})"
    verdict = "holds 2" if res.contains(2.0) else "excludes 2"
    return (f"q = {res.fit.q:.2f} [{res.q_low:.2f}, {res.q_high:.2f}] ({res.n_seeds} seeds), "
            f"{verdict}")  # fmt: skip


def _draw_alpha_tau(fig, ax, runs: pd.DataFrame, res, name: str) -> None:
    lt, la, ll = alpha_tau_grid(runs)
    fit = res.fit
    dt, da = (lt[1] - lt[0]) / 2, (la[1] - la[0]) / 2
    extent = (lt[0] - dt, lt[-1] + dt, la[0] - da, la[-1] + da)
    im = ax.imshow(ll.T, origin="lower", aspect="auto", cmap="viridis", extent=extent)
    label = "final test $R$" if name == "ours" else r"$\min_t$ test $F_A = R/A^2$"
    fig.colorbar(im, ax=ax, label=f"log10 {label} (mean over seeds)")
    xs = np.linspace(lt[0], lt[-1], 50)
    for k in np.flatnonzero(np.isfinite(fit.intercepts)):
        pk = fit.points[fit.points[:, 0] == k]
        ax.plot(pk[:, 1], pk[:, 2], "wo", ms=3)
        ax.plot(xs, fit.intercepts[k] - fit.q * xs, "w-", lw=1.2,
                label=f"fit A τ^q = const, q = {fit.q:.2f}" if k == 0 else None)  # fmt: skip
        mid = pk[:, 1].mean()
        ax.plot(xs, fit.intercepts[k] - fit.q * mid - 2 * (xs - mid), "r--", lw=1,
                label="prediction q = 2" if k == 0 else None)  # fmt: skip
    ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.set_xlabel("log10 τ (init std of both layers)")
    ax.set_ylabel("log10 A (output multiplier)")
    ax.legend(fontsize="x-small", loc="lower left")
    who = "ours (Chizat's step rule read on R)" if name == "ours" else "the Note's C6 loop"
    ax.set_title(f"{who}\n{C6_CONVENTIONS[name]}\n{_q_text(res)}", fontsize="small")


def plot_landscape(grid: pd.DataFrame, points: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C8 (the Note's Figs. 2 and 6): contours of ``log10`` test loss on the plane of the two
    principal directions of the solutions (±3 std around their mean), solutions marked; rows
    ``A = 1/√m``, ``A = 1/m``, columns ``m``."""
    ms = sorted(grid["m"].unique())
    pows = sorted(grid["chizat_alpha_power"].unique())
    with plot_style():
        fig, axes = _fig(len(pows), len(ms), w=3.6, h=3.2)
        for i, p in enumerate(pows):
            for j, m in enumerate(ms):
                ax = axes[i, j]
                g = grid[(grid["m"] == m) & (grid["chizat_alpha_power"] == p)]
                pt = points[(points["m"] == m) & (points["chizat_alpha_power"] == p)]
                if g.empty:
                    ax.set_axis_off()
                    continue
                su, sv = pt["sigma_u"].iloc[0], pt["sigma_v"].iloc[0]
                piv = g.pivot(index="i", columns="j", values="test_loss").to_numpy()
                u = np.sort(g["u"].unique()) / su
                v = np.sort(g["v"].unique()) / sv
                cs = ax.contourf(u, v, np.log10(piv).T, levels=14, cmap="viridis")
                fig.colorbar(cs, ax=ax, shrink=0.8, label="log10 test loss")
                ax.scatter(pt["u"] / su, pt["v"] / sv, c="r", s=14, marker="x")
                ax.plot([0], [0], "w+", ms=8)
                ax.set_title(f"{SCALING.get(float(p), p)}, m={m}", fontsize="small")
                ax.set_xlabel("PC1 / std")
                ax.set_ylabel("PC2 / std")
        suptitle(
            fig,
            "C8 log10 test loss on the plane of the two principal directions of the solutions "
            "(× = solutions, + = their mean)",
        )
        save(fig, out_pdf, out_png)


def plot_cover(cover: pd.DataFrame, teacher: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C4 (Chizat et al.'s Fig. 1): paths of ``|a_j| b_j`` in the plane, red ``a_j > 0``, blue
    ``a_j < 0``, circle markers at init, teacher directions as dashed rays coloured by the sign of
    their output weight; one panel per τ."""
    taus = sorted(cover["tau"].unique())
    seed = cover["seed"].min()
    with plot_style():
        fig, axes = _fig(1, len(taus), w=4.2, h=4.2)
        for ax, tau in zip(axes[0], taus):
            d = cover[(cover["tau"] == tau) & (cover["seed"] == seed)]
            lim = 1.2 * max(np.abs(d[["x1", "x2"]].to_numpy()).max(), 1e-12)
            t = teacher[(teacher["tau"] == tau) & (teacher["seed"] == seed)]
            for row in t.itertuples():
                col = "C3" if row.sign > 0 else "C0"
                ax.plot([0, lim * row.x1], [0, lim * row.x2], "--", color=col, lw=1.0, alpha=0.7)
            for _, nd in d.groupby("neuron"):
                nd = nd.sort_values("step")
                col = "C3" if nd["sign"].iloc[0] > 0 else "C0"
                ax.plot(nd["x1"], nd["x2"], color=col, lw=1)
                ax.plot(nd["x1"].iloc[0], nd["x2"].iloc[0], "o", color=col, ms=3)
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
            ax.set_aspect("equal")
            regime = "lazy" if tau == max(taus) else "non-lazy"
            ax.set_title(f"τ = {tau:g} ({regime})", fontsize="small")
            ax.set_xlabel("|a_j| b_j,1")
            ax.set_ylabel("|a_j| b_j,2")
        suptitle(
            fig,
            f"C4 neuron paths |a_j| b_j (red a>0, blue a<0; dashed rays: teacher neurons), "
            f"{int(cover['step'].max())} GD steps",
        )
        save(fig, out_pdf, out_png)


def plot_population(runs: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C3: population-SGD loss averaged over the last steps, normalized by its maximum over τ,
    against τ (mean ± std over trials)."""
    df = one_row_per_replica(runs)
    tab = mean_std(df, ["tau"], "tail_train_loss")
    scale = tab["mean"].max()
    tab[["mean", "std"]] = tab[["mean", "std"]] / scale
    with plot_style():
        fig, axes = _fig(1, 1, w=5.2, h=3.8)
        ax = axes[0, 0]
        _band(ax, tab, "tau", "C0", "fresh batches of " + f"{int(df['batch_size'].iloc[0])} points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(TAU_LABEL)
        ax.set_ylabel("population loss / max over τ (log scale)")
        ax.legend(fontsize="x-small")
        r = df.iloc[0]
        suptitle(
            fig,
            f"C3 population SGD: m={r['m']}, A={r['chizat_multiplier']:g}, "
            f"{int(df['final_step'].max())} steps, {int(df.groupby('tau').size().min())} trials, "
            f"{(df['status'] == 'diverged').sum()} diverged",
        )
        save(fig, out_pdf, out_png)
