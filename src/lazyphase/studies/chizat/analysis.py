"""Experiments C1–C8 (Chizat, Oyallon & Bach 2019 and the Note): the analyses.

The runs are ordinary ``model: chizat`` cells (``f = A Σ_j a_j relu(b_j·x)``, see
:func:`lazyphase.core.model.chizat_scales`), trained and aggregated by the common pipeline; this module
holds what is specific to the C figures: the level-line fit of C6 (:func:`fit_level_lines`,
:func:`alpha_tau_fit`, both conventions), the loss landscape of C8 (:func:`landscape`,
:func:`landscape_tables`), the neuron paths of C4 (:func:`cover_tables`); the plots are in
:mod:`lazyphase.studies.chizat.figures`. Nothing here writes a file. Inputs are the
``runs`` and ``traj`` tables of :mod:`lazyphase.store.tables` (columns ``tau, chizat_multiplier,
chizat_alpha_power, lr_policy, centering, test_loss_final, test_loss_best, tail_train_loss,
rd_total, …``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from lazyphase.core.data import make_target
from lazyphase.store.runs import load_run

log = logging.getLogger("lazyphase.chizat")

SCALING = {0.5: "A = 1/√m", 1.0: "A = 1/m"}


def one_row_per_replica(runs: pd.DataFrame) -> pd.DataFrame:
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


#: The two C6 conventions: what is measured and how the run was stepped (docs/chizat.md).
C6_CONVENTIONS = {
    "ours": "final test R; the run's step rule read on R, early stopping on R",
    "note": "min over t of test F_A = R/A²; step η/A³ on R, early stopping on F_A (the Note)",
}


def c6_convention(runs: pd.DataFrame) -> pd.Series:
    """Per row: ``"note"`` for the Note's C6 loop (``step_on: note_c6``), else ``"ours"``."""
    step_on = runs["step_on"] if "step_on" in runs.columns else pd.Series("R", index=runs.index)
    return step_on.eq("note_c6").map({True: "note", False: "ours"})


def c6_quantity(runs: pd.DataFrame) -> pd.Series:
    """The measured C6 quantity per replica row: the final test ``R`` (ours) or the Note's
    ``min_t`` test ``F_A = min_t R_test / A²``."""
    note = c6_convention(runs).eq("note")
    f_alpha = runs["test_loss_best"] / runs["chizat_multiplier"] ** 2
    return f_alpha.where(note, runs["test_loss_final"])


def alpha_tau_grid(
    runs: pd.DataFrame, seeds: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(log10 τ (T,), log10 A (A,), log10 mean quantity (T, A))`` of the C6 ``runs`` of one
    convention (:func:`c6_quantity`), the mean over the replicas of ``seeds`` (default: all; a
    seed listed twice counts twice, as in a bootstrap resample)."""
    df = one_row_per_replica(runs).assign(quantity=lambda d: c6_quantity(d))
    if seeds is not None:
        df = pd.concat([df[df["seed"] == s] for s in seeds], ignore_index=True)
    tab = mean_std(df, ["tau", "chizat_multiplier"], "quantity")
    piv = tab.pivot(index="tau", columns="chizat_multiplier", values="mean").sort_index()
    piv = piv[sorted(piv.columns)]
    return (
        np.log10(piv.index.to_numpy(float)),
        np.log10(piv.columns.to_numpy(float)),
        np.log10(piv.to_numpy(float)),
    )


@dataclass(frozen=True)
class AlphaTauFit:
    """The C6 fit of one convention: the level-line fit of the seed-mean map, and a percentile
    interval of ``q`` over a bootstrap of the seeds.

    Attributes:
        fit: :func:`fit_level_lines` on the mean over all seeds.
        q_low, q_high: the ``ci`` percentile interval over all ``n_boot`` resamples (a resample
        whose map yields no level line counts as a failure; NaN when fewer than ``ci`` of the
        resamples fit); fitted: that fraction; n_seeds: distinct seeds.
    """

    fit: LevelFit
    q_low: float
    q_high: float
    fitted: float
    n_seeds: int

    def contains(self, q: float) -> bool:
        return bool(self.q_low <= q <= self.q_high)


def alpha_tau_fit(
    runs: pd.DataFrame, *, n_boot: int = 200, ci: float = 0.9, seed: int = 0
) -> AlphaTauFit:
    """:class:`AlphaTauFit` of the C6 ``runs`` of one convention."""
    lt, la, ll = alpha_tau_grid(runs)
    fit = fit_level_lines(lt, la, ll, ci=ci)
    seeds = np.sort(runs["seed"].unique())
    rng = np.random.default_rng(seed)
    qs = []
    for _ in range(n_boot):
        draw = rng.choice(seeds, size=len(seeds), replace=True)
        try:
            qs.append(fit_level_lines(*alpha_tau_grid(runs, draw), ci=ci).q)
        except ValueError:
            qs.append(np.nan)
    qs = np.asarray(qs)
    fitted = float(np.isfinite(qs).mean()) if n_boot else 0.0
    # failures sort to the ends: percentiles over all resamples, NaN where a tail is a failure
    lo, hi = np.quantile(np.where(np.isfinite(qs), qs, np.inf), [(1 - ci) / 2, (1 + ci) / 2])
    if len(seeds) < 2 or not (np.isfinite(lo) and np.isfinite(hi)):
        lo = hi = np.nan
    return AlphaTauFit(fit, float(lo), float(hi), fitted, len(seeds))


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


def landscape_tables(
    paths: Sequence[str], *, n_grid: int = 25, span: float = 3.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """C8: for every run file (one ``(m, A)`` cell whose replicas share the data) the test-loss
    landscape around the mean of its final solutions: ``(grid, points)``, ``grid`` with columns
    ``m, chizat_alpha_power, chizat_multiplier, i, j, u, v, test_loss`` and ``points`` the
    solutions' ``u, v`` and test loss per ``seed``, with ``sigma_u, sigma_v``."""
    parts = [_run_landscape(path, n_grid, span) for path in paths]
    return (
        pd.concat([p[0] for p in parts], ignore_index=True),
        pd.concat([p[1] for p in parts], ignore_index=True),
    )


def _shared_test_set(run, path: str) -> tuple[np.ndarray, np.ndarray]:
    """The test set of the run's replicas (``(x, y)`` of the first), which must all share it."""
    x, y = run["data/x_test"], run["data/y_test"]
    if not (
        np.array_equal(x, x[:1].repeat(len(x), 0)) and np.array_equal(y, y[:1].repeat(len(y), 0))
    ):
        raise ValueError(f"{path}: replicas have different test sets (set resample_data: false)")
    return x[0], y[0]


def _run_landscape(path: str, n_grid: int, span: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``grid`` and ``points`` rows of :func:`landscape_tables` of one run file."""
    run = load_run(path, gram=False)
    a = run.attrs
    if "weights/final/W1" not in run.arrays:
        raise ValueError(f"{path}: no weights stored (raise weights_cap)")
    x, y = _shared_test_set(run, path)
    m, mult = int(a["m"]), float(a["chizat_multiplier"])
    w, av = run["weights/final/W1"], run["weights/final/a"]
    sol = np.concatenate([w.reshape(len(w), -1), av], axis=1)
    fn = chizat_test_loss(x, y, m, mult)
    land = landscape(sol, fn, n_grid=n_grid, span=span)
    key = {"m": m, "chizat_alpha_power": float(a["chizat_alpha_power"]), "chizat_multiplier": mult}
    ii, jj = np.meshgrid(np.arange(n_grid), np.arange(n_grid), indexing="ij")
    grid = pd.DataFrame(
        {
            **key,
            "i": ii.ravel(),
            "j": jj.ravel(),
            "u": land.u[ii.ravel()],
            "v": land.v[jj.ravel()],
            "test_loss": land.loss.ravel(),
        }
    )
    points = pd.DataFrame(
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
    log.info(
        "%s: m=%d A=%.3g landscape min %.3e max %.3e",
        path,
        m,
        mult,
        land.loss.min(),
        land.loss.max(),
    )
    return grid, points


# ----------------------------------------------------------------------------- C4: cover
def cover_tables(paths: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """C4: ``(cover, teacher)``: the neuron paths ``|a_j| b_j`` at every weight snapshot
    (``tau, seed, neuron, step, x1, x2, sign``) and the teacher's directions × output sign."""
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
    return pd.concat(rows, ignore_index=True), pd.concat(teach, ignore_index=True)
