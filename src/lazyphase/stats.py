"""Regime exponents, lazy-side thresholds and loss-decay rates (docs/conventions.md §4).

* :func:`fit_exponents` — per group, the least-squares slope of ``log RD_final`` against
  ``log m`` with a bootstrap over seeds (the *regime exponent*: < 0 lazy, ≈ 0 critical,
  > 0 condensed).
* :func:`thresholds` — the crossing ``s*`` of the exponent through 0 along ``s``, with the same
  crossing computed on every bootstrap replicate.
* :func:`linearized_rate`, :func:`loss_decay_prediction` — the linearized dynamics
  ``de/dt = −(1/n) Θ0 e`` give ``R(t) ≤ R0 · exp(−2 λ_min(Θ0) t / n)``.
* :func:`measured_decay_rate` — the initial rate ``−d log R / dt`` of a trajectory.
* :func:`function_exponents`, :func:`with_function_threshold` — the same fit and crossing for
  the function-space distance ``fdist`` to the linearized run (docs/conventions.md §5), giving
  ``s*_f`` next to the RD-based ``s*``.

All functions are pure; randomness only through an explicit ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

#: Default grouping of :func:`fit_exponents` (one exponent per cell of the grid but ``m``).
FIT_BY = ("scheme", "activation", "depth", "s", "layer", "layer_name")
#: Default grouping of :func:`thresholds` (one ``s*`` per scheme × activation × depth × layer).
THRESHOLD_BY = ("scheme", "activation", "depth", "layer", "layer_name")
#: The note of a threshold group whose exponent never goes from ≥ 0 to < 0 along ``s``.
NO_CROSSING = "no crossing in the grid's range"
#: :func:`measured_decay_rate` fits the snapshots with ``R/R0`` above this level.
DECAY_FIT_LEVEL = 1e-2


def _require(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{what} lacks the column(s) {missing}; it has {list(df.columns)}")


def _ls_slope(n: np.ndarray, sx: np.ndarray, sy: np.ndarray, sxx: np.ndarray, sxy: np.ndarray):
    """Least-squares slope from the sums ``n, Σx, Σy, Σx², Σxy`` (any matching shapes).

    The one place of the slope formula; entries with a non-positive denominator give NaN."""
    den = n * sxx - sx * sx
    num = n * sxy - sx * sy
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _percentile_interval(samples: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``ci`` percentile interval of ``samples (G, B)`` ignoring NaN (NaN if a row has
    no finite sample)."""
    samples = np.atleast_2d(samples)
    lo = np.full(samples.shape[0], np.nan)
    hi = np.full(samples.shape[0], np.nan)
    ok = np.isfinite(samples).any(axis=1)
    if ok.any():
        q = 100.0 * np.array([(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
        lo[ok], hi[ok] = np.nanpercentile(samples[ok], q, axis=1)
    return lo, hi


class _SeedSums(NamedTuple):
    """Per-group sums of :func:`fit_exponents` over the kept rows, in per-group centred logs."""

    keys: pd.DataFrame  # one row of the ``by`` values per group, in group order
    n_excluded: np.ndarray  # (G,) dropped rows
    cnt: np.ndarray  # (G,) kept rows
    mx: np.ndarray  # (G,) mean log x (the centring)
    my: np.ndarray  # (G,) mean log y
    stats: np.ndarray  # (G, K, 6) per (group, seed): n, Σx, Σy, Σx², Σxy, Σy²
    present: np.ndarray  # (G, K, W) 1 where the group has the seed at the width


def _group_seed_sums(
    runs: pd.DataFrame, by: list[str], x: str, y: str, exclude_status: Sequence[str]
) -> _SeedSums:
    """Group ids (sorted by ``by``), the kept rows (finite positive ``x``/``y``, ``status`` not
    excluded) and their per-group × seed sums of the centred ``log x``, ``log y``."""
    grouped = runs.groupby(by, dropna=False, sort=True)
    gid = grouped.ngroup().to_numpy()
    n_groups = int(gid.max()) + 1 if len(gid) else 0
    keys = (
        runs[by].assign(_g=gid).drop_duplicates("_g").sort_values("_g")[by].reset_index(drop=True)
    )

    xv = pd.to_numeric(runs[x], errors="coerce").to_numpy(dtype=float)
    yv = pd.to_numeric(runs[y], errors="coerce").to_numpy(dtype=float)
    keep = np.isfinite(xv) & np.isfinite(yv) & (xv > 0) & (yv > 0)
    if exclude_status:
        keep &= ~runs["status"].isin(list(exclude_status)).to_numpy()
    n_excluded = np.bincount(gid[~keep], minlength=n_groups)

    g = gid[keep]
    lx, ly = np.log(xv[keep]), np.log(yv[keep])
    # centre per group (the slope is shift-invariant; this keeps the sums well conditioned)
    cnt = np.bincount(g, minlength=n_groups).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.bincount(g, lx, minlength=n_groups) / cnt
        my = np.bincount(g, ly, minlength=n_groups) / cnt
    cx, cy = lx - mx[g], ly - my[g]

    seeds, sid = np.unique(runs["seed"].to_numpy()[keep], return_inverse=True)
    widths, wid = np.unique(xv[keep], return_inverse=True)
    n_k, n_w = len(seeds), len(widths)
    flat = g * n_k + sid
    feats = (np.ones_like(cx), cx, cy, cx * cx, cx * cy, cy * cy)
    stats = np.stack(
        [np.bincount(flat, f, minlength=n_groups * n_k) for f in feats], axis=-1
    ).reshape(n_groups, n_k, 6)
    present = np.zeros((n_groups, n_k, n_w))
    present[g, sid, wid] = 1.0
    return _SeedSums(keys, n_excluded, cnt, mx, my, stats, present)


def _ols(sums: _SeedSums) -> dict[str, np.ndarray]:
    """The point fit per group: ``slope, intercept, r2, n_m, n_seeds`` (NaN slope with fewer
    than two distinct widths)."""
    tot = sums.stats.sum(axis=1)
    n, sx, sy, sxx, sxy, syy = (tot[:, i] for i in range(6))
    n_m = sums.present.any(axis=1).sum(axis=1)
    n_seeds = (sums.stats[:, :, 0] > 0).sum(axis=1)
    slope = np.where(n_m >= 2, _ls_slope(n, sx, sy, sxx, sxy), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        intercept = (sy - slope * sx) / n + sums.my - slope * sums.mx
        vxx, vyy, vxy = sxx - sx * sx / n, syy - sy * sy / n, sxy - sx * sy / n
        r2 = np.where(np.isfinite(slope) & (vyy > 0), vxy * vxy / (vxx * vyy), np.nan)
    return {"slope": slope, "intercept": intercept, "r2": r2, "n_m": n_m, "n_seeds": n_seeds}


def _paired_bootstrap(
    sums: _SeedSums, slope: np.ndarray, n_seeds: np.ndarray, n_boot: int, seed: int
) -> np.ndarray:
    """``(G, n_boot)`` replicate slopes: one draw of the seeds per replicate, shared by every
    group (NaN where degenerate, everywhere when the bootstrap is skipped)."""
    n_groups, n_k = sums.stats.shape[:2]
    if not (n_boot > 0 and n_groups > 0 and n_k > 0):
        return np.full((n_groups, max(n_boot, 0)), np.nan)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_k, size=(n_boot, n_k))
    counts = (
        np.bincount((draws + n_k * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n_k)
        .reshape(n_boot, n_k)
        .astype(float)
    )
    bs = np.einsum("bk,gkf->gbf", counts, sums.stats)
    bw = np.einsum("bk,gkw->gbw", (counts > 0).astype(float), sums.present)
    bslope = _ls_slope(bs[..., 0], bs[..., 1], bs[..., 2], bs[..., 3], bs[..., 4])
    ok = ((bw > 0).sum(axis=-1) >= 2) & (n_seeds >= 2)[:, None] & np.isfinite(slope)[:, None]
    return np.where(ok, bslope, np.nan)


def fit_exponents(
    runs: pd.DataFrame,
    *,
    x: str = "m",
    y: str = "rd_final",
    by: Sequence[str] = FIT_BY,
    n_boot: int = 1000,
    ci: float = 0.9,
    seed: int = 0,
    exclude_status: Sequence[str] = ("diverged",),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Regime exponents: per group of ``by``, the slope of ``log y`` against ``log x``.

    The point estimate is ordinary least squares over every kept ``(x, seed)`` row of the group.
    Rows whose ``status`` is in ``exclude_status`` or whose ``x``/``y`` is non-positive or
    non-finite are dropped and counted in ``n_excluded``. A group with fewer than two distinct
    kept widths gets NaN.

    Bootstrap over seeds: replicate ``b`` draws ``K`` seed ids with replacement from the ``K``
    distinct seeds of the whole (kept) table, with ``numpy.random.default_rng(seed)``; a drawn
    seed brings all its widths, and a seed drawn ``c`` times weighs ``c``. The *same* draw is used
    for every group (a paired bootstrap), so replicate ``b`` of two groups — e.g. two values of
    ``s`` — belong together and :func:`thresholds` can be computed per replicate. A group that
    lacks some seeds uses the drawn seeds it has. Groups with fewer than two seeds get NaN
    replicates (a bootstrap over one seed has no spread). ``n_boot = 0`` skips the bootstrap.

    Returns ``(exponents, boot)``:

    * ``exponents``: ``by`` + ``slope, intercept`` (of ``log y = intercept + slope · log x``),
      ``ci_low, ci_high`` (``ci`` percentile interval of the replicates), ``r2``, ``n_obs``
      (rows fitted), ``n_m`` (distinct widths), ``n_seeds``, ``n_excluded``, ``n_boot`` (finite
      replicates);
    * ``boot``: ``by`` + ``boot`` (replicate index ``0 … n_boot−1``) + ``slope``, one row per
      group × replicate (NaN where the replicate is degenerate).
    """
    by = list(by)
    need = [*by, x, y, "seed"] + (["status"] if exclude_status else [])
    _require(runs, need, "runs")
    if not by:
        raise ValueError("fit_exponents needs at least one grouping column")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")

    sums = _group_seed_sums(runs, by, x, y, exclude_status)
    fit = _ols(sums)
    bslope = _paired_bootstrap(sums, fit["slope"], fit["n_seeds"], n_boot, seed)
    return _exponent_frames(sums, fit, bslope, ci)


def _exponent_frames(
    sums: _SeedSums, fit: dict[str, np.ndarray], bslope: np.ndarray, ci: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``(exponents, boot)`` frames of :func:`fit_exponents`."""
    n_groups = len(sums.keys)
    if bslope.size:
        ci_low, ci_high = _percentile_interval(bslope, ci)
    else:
        ci_low, ci_high = np.full(n_groups, np.nan), np.full(n_groups, np.nan)
    exponents = sums.keys.assign(
        slope=fit["slope"],
        intercept=fit["intercept"],
        ci_low=ci_low,
        ci_high=ci_high,
        r2=fit["r2"],
        n_obs=sums.cnt.astype(int),
        n_m=fit["n_m"].astype(int),
        n_seeds=fit["n_seeds"].astype(int),
        n_excluded=sums.n_excluded.astype(int),
        n_boot=np.isfinite(bslope).sum(axis=1).astype(int),
    )
    n_b = bslope.shape[1]
    boot = sums.keys.loc[np.repeat(np.arange(n_groups), n_b)].reset_index(drop=True)
    boot["boot"] = np.tile(np.arange(n_b), n_groups)
    boot["slope"] = bslope.ravel()
    return exponents, boot


def _zero_crossing(s: np.ndarray, slopes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crossings of ``slopes`` through 0 from ``≥ 0`` (smaller ``s``) to ``< 0`` (larger ``s``).

    ``s``: increasing grid ``(S,)``; ``slopes``: ``(R, S)``. Returns, per row, the linear
    interpolation at the largest-``s`` crossing (NaN if none) and the number of crossings.
    A pair with a NaN does not cross. The one place of the interpolation formula."""
    slopes = np.atleast_2d(slopes)
    if slopes.shape[1] < 2:
        return np.full(slopes.shape[0], np.nan), np.zeros(slopes.shape[0], dtype=int)
    a, b = slopes[:, :-1], slopes[:, 1:]
    cross = (a >= 0) & (b < 0)
    n_cross = cross.sum(axis=1)
    last = (cross.shape[1] - 1) - np.argmax(cross[:, ::-1], axis=1)
    rows = np.arange(slopes.shape[0])
    s0, s1 = s[last], s[last + 1]
    a0, b0 = a[rows, last], b[rows, last]
    with np.errstate(invalid="ignore", divide="ignore"):
        star = s0 + a0 * (s1 - s0) / (a0 - b0)
    return np.where(n_cross > 0, star, np.nan), n_cross


def thresholds(
    exponents: pd.DataFrame,
    boot: pd.DataFrame,
    *,
    by: Sequence[str] = THRESHOLD_BY,
    ci: float = 0.9,
    s: str = "s",
) -> pd.DataFrame:
    """Per group of ``by``, the value ``s*`` where the regime exponent crosses 0 along ``s``.

    The grid is the group's ``s`` values with a finite exponent, sorted. A crossing is a pair of
    adjacent grid values with exponent ``≥ 0`` at the smaller ``s`` and ``< 0`` at the larger;
    ``s*`` is the linear interpolation of the exponent between them. With several crossings the
    largest-``s`` one (the onset of the lazy side) is reported and ``note`` says so. The same
    interpolation is applied to every bootstrap replicate of ``boot`` (from
    :func:`fit_exponents`; replicate ``b`` of all ``s`` values together); ``s_star_low/high``
    are the ``ci`` percentiles over the replicates that cross, ``frac_boot_cross`` the fraction
    of replicates that cross. Without a crossing: NaN and ``note = NO_CROSSING``.

    Returns ``by`` + ``s_star, s_star_low, s_star_high, frac_boot_cross, n_crossings,
    lazy_side_negative`` (there is an ``s > 0`` and every exponent there is finite and ``< 0``),
    ``lazy_side_ci_negative`` (same with ``ci_high < 0``), ``s_min, s_max`` (the group's ``s``
    range), ``n_s`` (finite exponents), ``note``.
    """
    by = list(by)
    _require(exponents, [*by, s, "slope", "ci_high"], "exponents")
    _require(boot, [*by, s, "boot", "slope"], "boot")
    fit_keys = [c for c in boot.columns if c not in ("boot", "slope")]
    _require(exponents, fit_keys, "exponents")

    exps = exponents.reset_index(drop=True).copy()
    exps["_fit"] = np.arange(len(exps))
    exps["_thr"] = exps.groupby(by, dropna=False, sort=True).ngroup().to_numpy()
    bt = boot.merge(exps[[*fit_keys, "_fit"]], on=fit_keys, how="inner")

    rows = [_threshold_row(grp, bt, by, s, ci) for _, grp in exps.groupby("_thr", sort=True)]
    return pd.DataFrame(rows, columns=[*by, *_THRESHOLD_COLUMNS])


#: The columns of :func:`thresholds` after the ``by`` columns.
_THRESHOLD_COLUMNS = (
    "s_star",
    "s_star_low",
    "s_star_high",
    "frac_boot_cross",
    "n_crossings",
    "lazy_side_negative",
    "lazy_side_ci_negative",
    "s_min",
    "s_max",
    "n_s",
    "note",
)


def _threshold_row(
    grp: pd.DataFrame, bt: pd.DataFrame, by: list[str], s: str, ci: float
) -> dict[str, object]:
    """The :func:`thresholds` row of one group ``grp`` of exponents (``bt``: the bootstrap
    replicates joined to the exponents' row number ``_fit``)."""
    grp = grp.sort_values(s)
    key = grp.iloc[0][by].to_dict()
    s_all = grp[s].to_numpy(dtype=float)
    if np.unique(s_all).size != s_all.size:
        raise ValueError(f"group {key}: several exponents share one {s}; add a column to by")
    slope_all = grp["slope"].to_numpy(dtype=float)
    pos = s_all > 0
    lazy = bool(pos.any() and np.all(slope_all[pos] < 0))
    lazy_ci = bool(pos.any() and np.all(grp["ci_high"].to_numpy(dtype=float)[pos] < 0))

    fin = np.isfinite(slope_all)
    grid, slopes = s_all[fin], slope_all[fin]
    star, n_cross = _zero_crossing(grid, slopes[None, :])
    star, n_cross = float(star[0]), int(n_cross[0])
    sub = bt[bt["_fit"].isin(grp["_fit"].to_numpy()[fin])]
    n_seeds = int(grp["n_seeds"].min()) if "n_seeds" in grp.columns and len(grp) else MIN_SEEDS
    lo, hi, frac, why = _boot_crossings(sub, grid, s, ci, n_seeds)
    return {
        **key,
        "s_star": star,
        "s_star_low": lo,
        "s_star_high": hi,
        "frac_boot_cross": frac,
        "n_crossings": n_cross,
        "lazy_side_negative": lazy,
        "lazy_side_ci_negative": lazy_ci,
        "s_min": float(np.min(s_all)) if s_all.size else np.nan,
        "s_max": float(np.max(s_all)) if s_all.size else np.nan,
        "n_s": int(fin.sum()),
        "note": "; ".join(filter(None, [_crossing_note(grid, slopes, n_cross, star), why])),
    }


#: Fewer seeds give no interval: 2 seeds have 3 distinct bootstrap resamples.
MIN_SEEDS = 3


def _boot_crossings(
    sub: pd.DataFrame, grid: np.ndarray, s: str, ci: float, n_seeds: int
) -> tuple[float, float, float, str]:
    """``(low, high, fraction, why)``: the ``ci`` percentile interval of ``s*`` over **all**
    replicates in ``sub``, the fraction that cross along ``grid``, and why a bound is missing.

    A replicate that does not cross still counts: its ``s*`` lies below the grid when its
    exponent is ``< 0`` at every ``s`` (``−∞``), above it when ``≥ 0`` everywhere (``+∞``), and is
    undefined otherwise (it then counts against both bounds). A bound that falls outside the
    grid or on an undefined replicate is NaN; with fewer than :data:`MIN_SEEDS` seeds there is
    no interval at all."""
    if not len(sub) or grid.size < 2:
        return np.nan, np.nan, 0.0, ""
    mat = sub.pivot_table(index="boot", columns=s, values="slope", dropna=False)
    mat = mat.reindex(columns=grid).to_numpy(dtype=float)
    bstar, _ = _zero_crossing(grid, mat)
    crossed = np.isfinite(bstar)
    frac = float(crossed.mean())
    if n_seeds < MIN_SEEDS:
        return np.nan, np.nan, frac, f"no interval: {n_seeds} seeds (a seed bootstrap needs {MIN_SEEDS})"
    below = ~crossed & np.all(mat < 0, axis=1)
    above = ~crossed & np.all(mat >= 0, axis=1)
    vals = np.where(crossed, bstar, np.where(below, -np.inf, np.where(above, np.inf, np.nan)))
    # order statistics, not np.quantile: it interpolates infinities into finite garbage
    k_lo = int(np.floor((1 - ci) / 2 * (len(vals) - 1)))
    k_hi = int(np.ceil((1 + ci) / 2 * (len(vals) - 1)))
    lo = float(np.sort(np.where(np.isnan(vals), -np.inf, vals))[k_lo])
    hi = float(np.sort(np.where(np.isnan(vals), np.inf, vals))[k_hi])
    why = []
    if not np.isfinite(lo):
        why.append("interval reaches below the grid" if lo == -np.inf else "")
        lo = np.nan
    if not np.isfinite(hi):
        why.append("interval reaches above the grid" if hi == np.inf else "")
        hi = np.nan
    if np.isnan(lo) or np.isnan(hi):
        why.append(f"{100 * frac:.0f}% of resamples cross")
    return lo, hi, frac, "; ".join(filter(None, why))


def _crossing_note(grid: np.ndarray, slopes: np.ndarray, n_cross: int, star: float) -> str:
    """The ``note`` of a threshold row: where the crossing lies, or on which side the exponent
    stayed when there is none."""
    if grid.size < 2:
        return f"{NO_CROSSING} (fewer than 2 finite exponents)"
    if n_cross == 0:
        if np.all(slopes < 0):
            return f"{NO_CROSSING}: exponent < 0 at every s (lazy over the whole grid)"
        if np.all(slopes >= 0):
            return f"{NO_CROSSING}: exponent >= 0 at every s (no lazy side in the grid)"
        return f"{NO_CROSSING}: the exponent only rises through 0"
    notes = []
    if n_cross > 1:
        notes.append(f"{n_cross} crossings from >= 0 to < 0; reported the largest s (onset of the lazy side)")
    if star <= grid[1]:
        notes.append("crossing in the first grid interval: one s value on the non-lazy side")
    elif star >= grid[-2]:
        notes.append("crossing in the last grid interval: one s value on the lazy side")
    return "; ".join(notes)


def linearized_rate(lambda_min, n):
    """Initial loss-decay rate of the linearized dynamics, ``2 λ_min(Θ0) / n`` (docs/conventions.md §4:
    ``de/dt = −(1/n) Θ0 e``, so ``R(t) ≤ R0 · exp(−2 λ_min t / n)``). Broadcasts."""
    return 2.0 * np.asarray(lambda_min, dtype=float) / np.asarray(n, dtype=float)


def loss_decay_prediction(t, loss0, lambda_min, n):
    """The linearized prediction ``R0 · exp(−2 λ_min(Θ0) t / n)``, ``t = η · step``. Broadcasts
    over all arguments (``λ_min`` of the full empirical NTK Gram ``Θ0`` on the training set)."""
    t = np.asarray(t, dtype=float)
    return np.asarray(loss0, dtype=float) * np.exp(-linearized_rate(lambda_min, n) * t)


def _single_decay_rate(t: np.ndarray, loss: np.ndarray) -> float:
    order = np.argsort(t, kind="stable")
    t, loss = t[order], loss[order]
    ok = np.isfinite(t) & np.isfinite(loss) & (loss > 0)
    t, loss = t[ok], loss[ok]
    if t.size < 2:
        return np.nan
    rel = loss / loss[0]
    below = np.flatnonzero(rel <= DECAY_FIT_LEVEL)
    k = int(below[0]) if below.size else t.size  # leading snapshots with R/R0 > level
    if k < 2:
        k = 2  # a drop below the level by the 2nd snapshot: fit the first two (a lower bound)
    tt, ll = t[:k], np.log(loss[:k])
    sl = _ls_slope(np.float64(k), tt.sum(), ll.sum(), (tt * tt).sum(), (tt * ll).sum())
    return float(-sl)


def measured_decay_rate(traj_group: pd.DataFrame) -> float:
    """Measured initial loss-decay rate ``−d log R / dt`` of a trajectory (``t``, ``train_loss``).

    Choice: the least-squares slope of ``log R`` against ``t`` over the *leading* snapshots (in
    ``t`` order) whose ``R/R0 > 1e-2`` (``R0`` the first snapshot's loss), i.e. the first two
    decades of decay — early enough to be in the linearized regime, long enough to average over
    several snapshots, and before the loss floor of the stopping tolerance. If the loss falls
    below ``1e-2 · R0`` already at the second snapshot, the first two snapshots are used (a
    lower bound on the rate). Non-positive or non-finite losses are ignored. In the linearized
    regime the result is ``≥ 2 λ_min(Θ0)/n`` (faster modes decay first). If ``traj_group`` holds
    several seeds (column ``seed``), the median of the per-seed rates. NaN with < 2 snapshots.
    """
    _require(traj_group, ["t", "train_loss"], "traj_group")
    if "seed" in traj_group.columns and traj_group["seed"].nunique() > 1:
        rates = [
            _single_decay_rate(g["t"].to_numpy(float), g["train_loss"].to_numpy(float))
            for _, g in traj_group.groupby("seed", sort=True)
        ]
        rates = np.asarray(rates)
        return float(np.median(rates[np.isfinite(rates)])) if np.isfinite(rates).any() else np.nan
    return _single_decay_rate(
        traj_group["t"].to_numpy(dtype=float), traj_group["train_loss"].to_numpy(dtype=float)
    )


#: Grouping of the function-space exponent: ``fdist`` is one number per replica, not per layer.
FDIST_BY = ("scheme", "activation", "depth", "s")
#: Grouping of its crossing ``s*_f``.
FDIST_THRESHOLD_BY = ("scheme", "activation", "depth")


#: The function-space distances of the ``runs`` table → the tag of their boundary columns in
#: B1/B2: to the linearized run at equal time (``fdist``) and to the converged ``Θ0`` kernel
#: predictor ``f_lin(∞)`` (``fdist_conv``).
F_CRITERIA = {"fdist": "f", "fdist_conv": "fconv"}
#: Every criterion a boundary bisection can refine (config key ``refine_on``).
BISECTION_CRITERIA = ("rd", *F_CRITERIA)


def check_criteria(criteria: Sequence[str]) -> None:
    """Raise ``ValueError`` naming any criterion not in :data:`BISECTION_CRITERIA`."""
    bad = sorted(set(criteria) - set(BISECTION_CRITERIA))
    if bad:
        raise ValueError(f"unknown bisection criteria {bad}; choose from {list(BISECTION_CRITERIA)}")


def function_exponents(
    runs: pd.DataFrame,
    *,
    y: str = "fdist",
    n_boot: int = 1000,
    ci: float = 0.9,
    seed: int = 0,
    by: Sequence[str] = FDIST_BY,
    threshold_by: Sequence[str] = FDIST_THRESHOLD_BY,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The exponent of ``fdist = ‖f(θ_T) − f_lin(T)‖ / ‖f_lin(T) − f(θ0)‖`` (or another
    column ``y`` of :data:`F_CRITERIA`, e.g. ``fdist_conv`` against ``f_lin(∞)``) against
    ``m`` per ``by`` (one row per replica of ``runs``; :func:`fit_exponents` with the same
    paired bootstrap over seeds) and its crossing ``s*_f`` through 0 per ``threshold_by``
    (:func:`thresholds`). Theta-lazy predicts a negative exponent for every ``s > 0``. Returns
    ``(exponents, thresholds)``; groups without a finite ``y`` (linearized run skipped) get
    NaN."""
    by = [c for c in by if c in runs.columns]
    per_rep = runs[runs["layer"] == runs["layer"].min()] if "layer" in runs.columns else runs
    status = ("diverged",) if "status" in per_rep.columns else ()
    if y not in per_rep.columns:  # a table from before the column existed
        per_rep = per_rep.assign(**{y: np.nan})
    exps, boot = fit_exponents(
        per_rep, y=y, by=by, n_boot=n_boot, ci=ci, seed=seed, exclude_status=status
    )
    thr_by = [c for c in threshold_by if c in by]
    return exps, thresholds(exps, boot, by=thr_by, ci=ci)


def with_function_threshold(threshold: pd.DataFrame, fthreshold: pd.DataFrame) -> pd.DataFrame:
    """``threshold`` (RD-based ``s*`` per layer) with the function-space crossing of
    :func:`function_exponents` added as ``s_star_f, s_star_f_low, s_star_f_high,
    frac_boot_cross_f, lazy_side_negative_f, note_f`` (the same for every layer of a group)."""
    keys = [c for c in FDIST_THRESHOLD_BY if c in threshold.columns and c in fthreshold.columns]
    cols = {
        "s_star": "s_star_f",
        "s_star_low": "s_star_f_low",
        "s_star_high": "s_star_f_high",
        "frac_boot_cross": "frac_boot_cross_f",
        "lazy_side_negative": "lazy_side_negative_f",
        "note": "note_f",
    }
    right = fthreshold[[*keys, *cols]].rename(columns=cols)
    if not keys:
        return threshold.assign(**{c: np.nan for c in cols.values()})
    return threshold.merge(right, on=keys, how="left")


def regime_labels(slope) -> np.ndarray:
    """The regime of each regime exponent (slope of ``log RD`` against ``log m``), the one rule
    of the phase diagrams B1 and B2: ``linear`` if ``< 0`` (RD → 0), ``condensed`` if ``≥ 0``,
    ``undetermined`` if NaN. The critical regime is the boundary between them (the crossing
    ``s*`` of :func:`thresholds`; B1's ``γ*``), where the exponent is 0."""
    sl = np.asarray(slope, dtype=float)
    return np.where(~np.isfinite(sl), "undetermined", np.where(sl < 0, "linear", "condensed"))


def hatched_cells(slope, r2, n_converged, n_replicas, r2_min: float) -> np.ndarray:
    """The cells a phase diagram hatches (B1, B2): no finite exponent, a fit with
    ``R² < r2_min``, or a replica that did not converge (hit ``max_steps``, diverged)."""
    sl = np.asarray(slope, dtype=float)
    r2 = np.nan_to_num(np.asarray(r2, dtype=float), nan=0.0)
    return ~np.isfinite(sl) | (r2 < r2_min) | (np.asarray(n_converged) < np.asarray(n_replicas))


def grid_bracket(grid: np.ndarray, star: float) -> tuple[float, float]:
    """The adjacent values of the sorted ``grid`` around a crossing ``star`` (NaN where there is
    none on that side, both NaN when ``star`` is NaN): the bracket a bisection refines."""
    if not np.isfinite(star):
        return np.nan, np.nan
    below, above = grid[grid <= star + 1e-12], grid[grid > star + 1e-12]
    return (
        float(below.max()) if below.size else np.nan,
        float(above.min()) if above.size else np.nan,
    )


def bisection_midpoint(low: float, high: float, tol: float) -> float | None:
    """The midpoint of the bracket ``[low, high]`` when its half-width exceeds ``tol`` (rounded
    to 12 decimals, so that a grid value built from it prints and compares cleanly); None when
    the bracket is open (NaN) or already narrow enough."""
    if not (np.isfinite(low) and np.isfinite(high)) or (high - low) / 2 <= tol + 1e-12:
        return None
    return round((low + high) / 2, 12)
