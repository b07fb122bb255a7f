"""Experiments C1–C8 (Chizat, Oyallon & Bach 2019 and the Note): analyses and figures.

The runs are ordinary ``model: chizat`` cells (``f = A Σ_j a_j relu(b_j·x)``, see
:func:`lazyphase.model.chizat_scales`), trained and aggregated by the common pipeline; this module
holds what is specific to the C figures: the level-line fit of C6 (:func:`fit_level_lines`), the
loss landscape of C8 (:func:`landscape`, :func:`compute_landscape`), the neuron paths of C4
(:func:`cover_table`) and the eight plots (:func:`plot`). Inputs are the ``runs`` and ``traj``
tables of :mod:`lazyphase.tables` (columns ``tau, chizat_multiplier, chizat_alpha_power,
lr_policy, centering, test_loss_final, test_loss_best, tail_train_loss, rd_total, …``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from .data import make_target
from .figures import _save, _style, _suptitle
from .store import load_run

log = logging.getLogger("lazyphase.chizat")

TAU_LABEL = "init scale τ (std of both layers, log scale)"
TEST_LABEL = "test loss R_test (log scale)"
SCALING = {0.5: "A = 1/√m", 1.0: "A = 1/m"}


def _one_row_per_replica(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` has one row per replica × layer; the loss columns repeat: keep layer 1."""
    return runs[runs["layer"] == 1] if "layer" in runs.columns else runs


def mean_std(df: pd.DataFrame, by: Sequence[str], col: str) -> pd.DataFrame:
    """Per group of ``by``: ``mean, std, n`` of ``col`` over replicas (std 0 for one replica)."""
    g = df.groupby(list(by), sort=True)[col]
    out = g.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    out["std"] = out["std"].fillna(0.0)
    return out


# ----------------------------------------------------------------------------- C6: level lines
@dataclass(frozen=True)
class LevelFit:
    """Level lines ``log α = c_k − q log τ`` of a heatmap, one common slope ``q``.

    Attributes:
        q: fitted exponent; q_low, q_high: its ``ci`` interval (normal approximation of the OLS
        standard error); levels: the contour levels (of ``log10`` loss); points: the crossing
        points ``(level index, log10 τ, log10 α)`` used in the fit, ``(P, 3)``;
        intercepts: ``c_k`` per level.
    """

    q: float
    q_low: float
    q_high: float
    levels: np.ndarray
    points: np.ndarray
    intercepts: np.ndarray


def fit_level_lines(
    log_tau: np.ndarray,
    log_alpha: np.ndarray,
    log_loss: np.ndarray,
    *,
    n_levels: int = 5,
    quantiles: tuple[float, float] = (0.2, 0.8),
    ci: float = 0.9,
) -> LevelFit:
    """Fit ``α τ^q = const`` to the level lines of ``log_loss`` (C6, the Note's Fig. 5).

    For each level (``n_levels`` evenly between the given quantiles of the finite values) and
    each ``τ`` row (and each ``α`` column), the first upward crossing along increasing ``α`` (and
    along increasing ``τ``) is located by linear interpolation; then ``log α = c_level − q log τ`` is fitted by least squares with
    one intercept per level and a common ``q``.

    Args:
        log_tau: ``(T,)`` increasing ``log10 τ``; log_alpha: ``(A,)`` increasing ``log10 α``.
        log_loss: ``(T, A)`` ``log10`` of the test loss.

    Raises:
        ValueError: when fewer than three crossing points are found (no level line to fit).
    """
    finite = log_loss[np.isfinite(log_loss)]
    levels = np.linspace(*np.quantile(finite, quantiles), n_levels)
    pts = []
    for k, c in enumerate(levels):
        for i, lt in enumerate(log_tau):  # along A at fixed τ
            hit = _first_crossing(log_alpha, log_loss[i], c)
            if hit is not None:
                pts.append((k, lt, hit))
        for j, la in enumerate(log_alpha):  # along τ at fixed A
            hit = _first_crossing(log_tau, log_loss[:, j], c)
            if hit is not None:
                pts.append((k, hit, la))
    points = np.unique(np.asarray(pts, dtype=float).reshape(-1, 3), axis=0)
    if len(points) < 3:
        raise ValueError(f"only {len(points)} level-line points found; the grid is too flat")
    k_idx = points[:, 0].astype(int)
    design = np.zeros((len(points), n_levels + 1))
    design[np.arange(len(points)), k_idx] = 1.0
    design[:, -1] = -points[:, 1]
    used = design[:, :-1].any(axis=0)
    design = np.concatenate([design[:, :-1][:, used], design[:, -1:]], axis=1)
    coef, *_ = np.linalg.lstsq(design, points[:, 2], rcond=None)
    resid = points[:, 2] - design @ coef
    dof = max(len(points) - design.shape[1], 1)
    cov = np.linalg.pinv(design.T @ design) * float(resid @ resid) / dof
    from scipy.stats import norm

    half = float(norm.ppf(0.5 + ci / 2) * math.sqrt(max(cov[-1, -1], 0.0)))
    intercepts = np.full(n_levels, np.nan)
    intercepts[used] = coef[:-1]
    q = float(coef[-1])
    return LevelFit(q, q - half, q + half, levels, points, intercepts)


def _first_crossing(x: np.ndarray, y: np.ndarray, level: float) -> float | None:
    """The first ``x`` where ``y`` (sampled at increasing ``x``) rises through ``level``
    (linear interpolation), or ``None``."""
    for j in range(len(x) - 1):
        lo, hi = y[j] - level, y[j + 1] - level
        if np.isfinite(lo) and np.isfinite(hi) and lo <= 0 < hi:
            return float(x[j] + (-lo / (hi - lo)) * (x[j + 1] - x[j]))
    return None


def alpha_tau_grid(runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(log10 τ (T,), log10 A (A,), log10 mean test loss (T, A))`` of a C6 ``runs`` table
    (the test loss at the end of training: early stopped, converged or at ``max_steps``)."""
    df = _one_row_per_replica(runs)
    tab = mean_std(df, ["tau", "chizat_multiplier"], "test_loss_final")
    piv = tab.pivot(index="tau", columns="chizat_multiplier", values="mean").sort_index()
    piv = piv[sorted(piv.columns)]
    return (
        np.log10(piv.index.to_numpy(float)),
        np.log10(piv.columns.to_numpy(float)),
        np.log10(piv.to_numpy(float)),
    )


# ----------------------------------------------------------------------------- C8: landscape
@dataclass(frozen=True)
class Landscape:
    """A loss surface on the plane of the two principal directions of K solutions.

    Attributes:
        mean: ``(P,)`` mean solution; directions: ``(2, P)`` orthonormal principal directions;
        sigma: ``(2,)`` std of the solutions along them; u, v: ``(N,)`` grid coordinates
        (symmetric around 0, i.e. around the mean); loss: ``(N, N)`` loss at
        ``mean + u_i d_0 + v_j d_1``; coords: ``(K, 2)`` the solutions' coordinates.
    """

    mean: np.ndarray
    directions: np.ndarray
    sigma: np.ndarray
    u: np.ndarray
    v: np.ndarray
    loss: np.ndarray
    coords: np.ndarray


def landscape(
    solutions: np.ndarray,
    loss_fn: Callable[[np.ndarray], np.ndarray],
    *,
    n_grid: int = 25,
    span: float = 3.0,
) -> Landscape:
    """Loss on the plane through the mean of ``solutions`` spanned by their two principal
    directions (PCA of the centred solutions), ``±span`` std along each, ``n_grid²`` points.

    Args:
        solutions: ``(K, P)`` flattened parameter vectors, ``K ≥ 3``.
        loss_fn: ``(B, P)`` parameter vectors → ``(B,)`` losses.
        n_grid: points per axis (odd keeps the mean itself on the grid).
    """
    sol = np.asarray(solutions, dtype=np.float64)
    if sol.ndim != 2 or sol.shape[0] < 3:
        raise ValueError(f"need (K >= 3, P) solutions, got shape {sol.shape}")
    mean = sol.mean(axis=0)
    centred = sol - mean
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    dirs = vt[:2]
    sigma = sv[:2] / math.sqrt(sol.shape[0] - 1)
    base = np.linspace(-span, span, n_grid)
    u, v = base * sigma[0], base * sigma[1]
    uu, vv = np.meshgrid(u, v, indexing="ij")
    pts = mean + uu.reshape(-1, 1) * dirs[0] + vv.reshape(-1, 1) * dirs[1]
    loss = np.asarray(loss_fn(pts), dtype=np.float64).reshape(n_grid, n_grid)
    return Landscape(mean, dirs, sigma, u, v, loss, centred @ dirs.T)


def chizat_test_loss(
    x: np.ndarray, y: np.ndarray, m: int, mult: float, *, chunk: int = 64
) -> Callable[[np.ndarray], np.ndarray]:
    """``θ (B, m d + m) ↦ (1/2n) Σ_i (A Σ_j a_j relu(b_j·x_i) − y_i)²`` on ``x (n, d)``,
    ``y (n,)`` (float64, chunks of ``chunk`` parameter vectors)."""
    xt = torch.from_numpy(np.asarray(x, dtype=np.float64))
    yt = torch.from_numpy(np.asarray(y, dtype=np.float64))
    d = xt.shape[1]

    def loss(theta: np.ndarray) -> np.ndarray:
        out = []
        th = torch.from_numpy(np.asarray(theta, dtype=np.float64))
        for c in th.split(chunk):
            w = c[:, : m * d].reshape(-1, m, d)
            a = c[:, m * d :]
            f = mult * torch.einsum("bnm,bm->bn", torch.relu(torch.einsum("nd,bmd->bnm", xt, w)), a)
            out.append(0.5 * ((f - yt) ** 2).mean(dim=1))
        return torch.cat(out).numpy()

    return loss


def compute_landscape(
    paths: Sequence[str], out_grid: str, out_points: str, *, n_grid: int = 25, span: float = 3.0
) -> None:
    """C8: for every run file (one ``(m, A)`` cell whose replicas share the data) the test-loss
    landscape around the mean of its final solutions → ``out_grid`` (parquet: ``m,
    chizat_alpha_power, chizat_multiplier, i, j, u, v, test_loss``) and ``out_points`` (parquet:
    the solutions' ``u, v`` and test loss per ``seed``; ``sigma_u, sigma_v``)."""
    grids, points = [], []
    for path in paths:
        run = load_run(path, gram=False)
        a = run.attrs
        if "weights/final/W1" not in run.arrays:
            raise ValueError(f"{path}: no weights stored (raise weights_cap)")
        x, y = run["data/x_test"], run["data/y_test"]
        if not (
            np.array_equal(x, x[:1].repeat(len(x), 0))
            and np.array_equal(y, y[:1].repeat(len(y), 0))
        ):
            raise ValueError(
                f"{path}: replicas have different test sets (set resample_data: false)"
            )
        m, mult = int(a["m"]), float(a["chizat_multiplier"])
        w, av = run["weights/final/W1"], run["weights/final/a"]
        sol = np.concatenate([w.reshape(len(w), -1), av], axis=1)
        fn = chizat_test_loss(x[0], y[0], m, mult)
        land = landscape(sol, fn, n_grid=n_grid, span=span)
        key = {
            "m": m,
            "chizat_alpha_power": float(a["chizat_alpha_power"]),
            "chizat_multiplier": mult,
        }
        ii, jj = np.meshgrid(np.arange(n_grid), np.arange(n_grid), indexing="ij")
        grids.append(
            pd.DataFrame(
                {
                    **key,
                    "i": ii.ravel(),
                    "j": jj.ravel(),
                    "u": land.u[ii.ravel()],
                    "v": land.v[jj.ravel()],
                    "test_loss": land.loss.ravel(),
                }
            )
        )
        points.append(
            pd.DataFrame(
                {
                    **key,
                    "seed": run["replicas/seed"],
                    "u": land.coords[:, 0],
                    "v": land.coords[:, 1],
                    "test_loss": fn(sol),
                    "sigma_u": land.sigma[0],
                    "sigma_v": land.sigma[1],
                }
            )
        )
        log.info(
            "%s: m=%d A=%.3g landscape min %.3e max %.3e",
            path,
            m,
            mult,
            land.loss.min(),
            land.loss.max(),
        )
    for out, parts in ((out_grid, grids), (out_points, points)):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        pd.concat(parts, ignore_index=True).to_parquet(out)


# ----------------------------------------------------------------------------- C4: cover
def cover_table(paths: Sequence[str], out: str, out_teacher: str) -> None:
    """C4: neuron paths ``|a_j| b_j`` at every weight snapshot (``tau, seed, neuron, step, x1,
    x2, sign``) → ``out``, and the teacher's directions × output sign → ``out_teacher``."""
    rows, teach = [], []
    for path in paths:
        run = load_run(path, gram=False)
        if "weights/snapshots/W1" not in run.arrays:
            raise ValueError(f"{path}: no weight snapshots (set weight_snapshots: true)")
        tau = float(run.attrs["tau"])
        w, a = run["weights/snapshots/W1"], run["weights/snapshots/a"]  # (R, S, m, d), (R, S, m)
        steps = run["trajectory/step"]
        cell = run.cell
        for r, seed in enumerate(run["replicas/seed"]):
            p = np.abs(a[r])[..., None] * w[r]  # (S, m, d)
            s_idx, j_idx = np.meshgrid(np.arange(len(steps)), np.arange(p.shape[1]), indexing="ij")
            rows.append(
                pd.DataFrame(
                    {
                        "tau": tau,
                        "seed": int(seed),
                        "neuron": j_idx.ravel(),
                        "step": steps[s_idx.ravel()],
                        "x1": p[..., 0].ravel(),
                        "x2": p[..., 1].ravel(),
                        "sign": np.sign(a[r, 0])[j_idx.ravel()],
                    }
                )
            )
            t = make_target(cell, int(seed))
            dirs = t.directions.numpy()
            teach.append(
                pd.DataFrame(
                    {
                        "tau": tau,
                        "seed": int(seed),
                        "x1": dirs[:, 0],
                        "x2": dirs[:, 1],
                        "sign": t.signs.numpy(),
                    }
                )
            )
    pd.concat(rows, ignore_index=True).to_parquet(out)
    pd.concat(teach, ignore_index=True).to_parquet(out_teacher)


# ----------------------------------------------------------------------------- plots
def _fig(n_rows: int, n_cols: int, w: float = 4.4, h: float = 3.4) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(w * n_cols, h * n_rows + 0.9), layout="constrained")
    axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False))
    return fig, axes


def _band(ax, tab: pd.DataFrame, x: str, color, label: str, ls: str = "-") -> None:
    tab = tab.sort_values(x)
    ax.plot(tab[x], tab["mean"], color=color, ls=ls, marker="o", ms=3, lw=1.4, label=label)
    lo = np.maximum(tab["mean"] - tab["std"], tab["mean"] * 0.05)
    ax.fill_between(tab[x], lo, tab["mean"] + tab["std"], color=color, alpha=0.15, lw=0)


def _centering_label(c: str) -> str:
    return "symmetrized init (f₀ = 0)" if c == "symmetric" else "non-symmetrized init"


def _policy_label(df: pd.DataFrame) -> str:
    row = df.iloc[0]
    if row["lr_policy"] == "chizat":
        return f"η = min({row.get('lr_max', 10):g}, {row['lr_c']:g}/τ²)"
    if row["lr_policy"] == "fixed":
        return f"η = {row['lr']:g} (fixed)"
    if row["lr_policy"] == "width":
        return f"η = {row['lr_c']:g}/m"
    if row["lr_policy"] == "chizat_alpha":
        return f"η = min(10, {row['lr_c']:g}/(τA)²)"
    return str(row["lr_policy"])


def plot_tau(runs: pd.DataFrame, out_pdf: str, out_png: str, *, policies: Sequence[str]) -> None:
    """C1 (``policies = [chizat]``) and C7 (all step rules): test loss against ``τ``, end of
    training (solid) and best so far (dotted), mean ± std over trials; one panel per centering."""
    df = _one_row_per_replica(runs)
    df = df[df["lr_policy"].isin(policies)]
    cents = sorted(df["centering"].unique(), reverse=True)
    colors = dict(zip(sorted(df["lr_policy"].unique()), ["C0", "C3", "C2", "C4"]))
    with _style():
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
        r = df.iloc[0]
        what = (
            "C1 test loss vs τ"
            if list(policies) == ["chizat"]
            else "C7 step-size rule vs fixed step"
        )
        _suptitle(
            fig,
            f"{what}: m={r['m']}, d={r['d']}, n={r['n']}, A={r['chizat_multiplier']:g}, "
            f"{int(df['final_step'].max())} GD steps on F_A = R(A h)/A²",
        )
        _save(fig, out_pdf, out_png)


def plot_width(runs: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C2: test loss (end of training) and relative displacement ``‖Δθ‖/‖θ0‖`` against ``m`` for
    ``A = 1/√m`` and ``A = 1/m``: dots per trial, lines through the means."""
    df = _one_row_per_replica(runs)
    with _style():
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
            ax.set_xlabel("width m (log scale; m0 = 3 teacher neurons)")
            ax.set_ylabel(ylab)
            ax.legend(fontsize="x-small")
        r = df.iloc[0]
        _suptitle(
            fig,
            f"C2 test loss vs width: d={r['d']}, n={r['n']}, teacher ×{r['teacher_scale']:g}, "
            f"τ={r['tau']:g}, non-symmetrized, {int(df['final_step'].max())} GD steps, "
            f"{df.groupby(['m', 'chizat_alpha_power']).size().min()} trials",
        )
        _save(fig, out_pdf, out_png)


def plot_trajectories(traj: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C5 (the Note's Fig. 1): relative parameter change ``‖θ(t) − θ0‖/‖θ0‖`` and ``log10`` test
    loss against the step, lazy (large τ) against non-lazy (small τ), one line per trial."""
    with _style():
        fig, axes = _fig(1, 2)
        taus = sorted(traj["tau"].unique())
        colors = dict(zip(taus, ("C0", "C3", "C2", "C4")))
        for (tau, seed), d in traj.groupby(["tau", "seed"]):
            d = d.sort_values("step")
            lazy = "lazy" if tau == max(taus) else "non-lazy"
            lab = f"τ={tau:g} ({lazy}), η={min(10.0, d['lr_c'].iloc[0] / tau**2):.3g}"
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
        r = traj.iloc[0]
        _suptitle(
            fig,
            f"C5 trajectories: m={r['m']}, d=100, non-symmetrized, early stopping on the test loss "
            f"(patience {r['patience']:g} steps)",
        )
        _save(fig, out_pdf, out_png)


def plot_alpha_tau(runs: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C6 (the Note's Fig. 5): heatmap of ``log10`` test loss over ``(τ, A)`` with the fitted
    level lines ``A τ^q = const`` (solid) and the prediction ``q = 2`` (dashed)."""
    lt, la, ll = alpha_tau_grid(runs)
    fit = fit_level_lines(lt, la, ll)
    with _style():
        fig, axes = _fig(1, 1, w=6.0, h=4.8)
        ax = axes[0, 0]
        dt, da = (lt[1] - lt[0]) / 2, (la[1] - la[0]) / 2
        im = ax.imshow(
            ll.T,
            origin="lower",
            aspect="auto",
            cmap="viridis",
            extent=(lt[0] - dt, lt[-1] + dt, la[0] - da, la[-1] + da),
        )
        fig.colorbar(im, ax=ax, label="log10 test loss (mean over trials)")
        xs = np.linspace(lt[0], lt[-1], 50)
        for k in range(len(fit.levels)):
            if not np.isfinite(fit.intercepts[k]):
                continue
            pk = fit.points[fit.points[:, 0] == k]
            ax.plot(pk[:, 1], pk[:, 2], "wo", ms=3)
            ax.plot(
                xs,
                fit.intercepts[k] - fit.q * xs,
                "w-",
                lw=1.2,
                label=f"fit A τ^q = const, q = {fit.q:.2f}" if k == 0 else None,
            )
            ax.plot(
                xs,
                fit.intercepts[k] - 2 * (xs - pk[:, 1].mean()) - fit.q * pk[:, 1].mean(),
                "r--",
                lw=1,
                label="prediction q = 2" if k == 0 else None,
            )
        ax.set_xlim(lt[0] - dt, lt[-1] + dt)
        ax.set_ylim(la[0] - da, la[-1] + da)
        ax.set_xlabel("log10 τ (init std of both layers)")
        ax.set_ylabel("log10 A (output multiplier)")
        ax.legend(fontsize="x-small", loc="lower left")
        _suptitle(
            fig,
            f"C6 test loss over (τ, A): level lines fitted q = {fit.q:.2f} "
            f"[{fit.q_low:.2f}, {fit.q_high:.2f}] (90% CI), predicted 2",
        )
        _save(fig, out_pdf, out_png)


def plot_landscape(grid: pd.DataFrame, points: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C8 (the Note's Figs. 2 and 6): contours of ``log10`` test loss on the plane of the two
    principal directions of the solutions (±3 std around their mean), solutions marked; rows
    ``A = 1/√m``, ``A = 1/m``, columns ``m``."""
    ms = sorted(grid["m"].unique())
    pows = sorted(grid["chizat_alpha_power"].unique())
    with _style():
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
        _suptitle(
            fig,
            "C8 log10 test loss on the plane of the two principal directions of the solutions "
            "(× = solutions, + = their mean)",
        )
        _save(fig, out_pdf, out_png)


def plot_cover(cover: pd.DataFrame, teacher: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C4 (Chizat et al.'s Fig. 1): paths of ``|a_j| b_j`` in the plane, red ``a_j > 0``, blue
    ``a_j < 0``, circle markers at init, teacher directions as dashed rays coloured by the sign of
    their output weight; one panel per τ."""
    taus = sorted(cover["tau"].unique())
    seed = cover["seed"].min()
    with _style():
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
        _suptitle(
            fig,
            f"C4 neuron paths |a_j| b_j (red a>0, blue a<0; dashed rays: teacher neurons), "
            f"{int(cover['step'].max())} GD steps",
        )
        _save(fig, out_pdf, out_png)


def plot_population(runs: pd.DataFrame, out_pdf: str, out_png: str) -> None:
    """C3: population-SGD loss averaged over the last steps, normalized by its maximum over τ,
    against τ (mean ± std over trials)."""
    df = _one_row_per_replica(runs)
    tab = mean_std(df, ["tau"], "tail_train_loss")
    scale = tab["mean"].max()
    tab[["mean", "std"]] = tab[["mean", "std"]] / scale
    with _style():
        fig, axes = _fig(1, 1, w=5.2, h=3.8)
        ax = axes[0, 0]
        _band(ax, tab, "tau", "C0", "fresh batches of " + f"{int(df['batch_size'].iloc[0])} points")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(TAU_LABEL)
        ax.set_ylabel("population loss / max over τ (log scale)")
        ax.legend(fontsize="x-small")
        r = df.iloc[0]
        _suptitle(
            fig,
            f"C3 population SGD: m={r['m']}, A={r['chizat_multiplier']:g}, "
            f"{int(df['final_step'].max())} steps, {int(df.groupby('tau').size().min())} trials, "
            f"{(df['status'] == 'diverged').sum()} diverged",
        )
        _save(fig, out_pdf, out_png)


def plot(figure: str, t: Mapping[str, pd.DataFrame], out_pdf: str, out_png: str) -> None:
    """Draw the C figure ``figure`` from the tables ``t`` (keys as in the rules' inputs)."""
    if figure == "chizat_tau":
        plot_tau(t["runs"], out_pdf, out_png, policies=["chizat"])
    elif figure == "chizat_stepsize":
        plot_tau(t["runs"], out_pdf, out_png, policies=sorted(t["runs"]["lr_policy"].unique()))
    elif figure == "chizat_width":
        plot_width(t["runs"], out_pdf, out_png)
    elif figure == "chizat_trajectories":
        plot_trajectories(t["traj"], out_pdf, out_png)
    elif figure == "chizat_alpha_tau":
        plot_alpha_tau(t["runs"], out_pdf, out_png)
    elif figure == "chizat_landscape":
        plot_landscape(t["grid"], t["points"], out_pdf, out_png)
    elif figure == "chizat_cover":
        plot_cover(t["cover"], t["teacher"], out_pdf, out_png)
    elif figure == "chizat_population":
        plot_population(t["runs"], out_pdf, out_png)
    else:
        raise ValueError(f"unknown figure {figure!r}")
