"""Regime exponents, thresholds and decay rates on synthetic tables with known answers."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from lazyphase.stats import (
    NO_CROSSING,
    fit_exponents,
    linearized_rate,
    loss_decay_prediction,
    measured_decay_rate,
    thresholds,
)

S_GRID = (-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
WIDTHS = (64, 128, 256, 512, 1024)


def synthetic_runs(
    slope_fn,
    *,
    schemes=("lecun", "xavier"),
    depths=(1, 2),
    s_grid=S_GRID,
    widths=WIDTHS,
    seeds=range(8),
    noise=0.1,
    rng_seed=0,
) -> pd.DataFrame:
    """``RD = C · m^{slope(s, layer)} · exp(noise)``, one row per replica × layer. The noise is
    a per-replica (seed × width) offset shared by the layers plus an independent part."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for scheme in schemes:
        for depth in depths:
            for s in s_grid:
                for m in widths:
                    for seed in seeds:
                        shared = rng.normal(0.0, noise)
                        for layer in range(1, depth + 2):
                            eps = shared + rng.normal(0.0, noise / 2)
                            rows.append(
                                {
                                    "experiment": "theta_lazy",
                                    "scheme": scheme,
                                    "activation": "tanh",
                                    "depth": depth,
                                    "s": s,
                                    "m": m,
                                    "seed": seed,
                                    "layer": layer,
                                    "layer_name": f"W{layer}" if layer <= depth else "a",
                                    "rd_final": 0.3 * m ** slope_fn(s, layer) * np.exp(eps),
                                    "status": "converged",
                                }
                            )
    return pd.DataFrame(rows)


def true_slope(s, layer):
    return -s + 0.1 * layer


def test_fitted_slopes_recover_the_truth():
    runs = synthetic_runs(true_slope)
    exps, boot = fit_exponents(runs, n_boot=400, seed=1)
    assert len(exps) == 2 * 7 * (2 + 3)  # scheme × s × layers of depth 1 and 2
    truth = true_slope(exps["s"], exps["layer"])
    # standard error of one slope: 0.11 / (sd(log m) = 0.98 · √40) ≈ 0.018
    err = (exps["slope"] - truth).abs()
    assert err.mean() < 0.025, err.mean()
    assert err.max() < 0.08, err.max()  # ≈ 4.5 standard errors over 70 groups
    # the 90% bootstrap interval over 8 seeds covers the truth in most groups
    covered = (exps["ci_low"] <= truth) & (truth <= exps["ci_high"])
    assert covered.mean() >= 0.75, covered.mean()
    assert (exps["ci_low"] < exps["slope"]).all() and (exps["slope"] < exps["ci_high"]).all()
    assert (exps["ci_high"] - exps["ci_low"]).max() < 0.2
    assert (exps["n_m"] == 5).all() and (exps["n_seeds"] == 8).all()
    assert (exps["n_excluded"] == 0).all() and (exps["n_boot"] == 400).all()
    steep = truth.abs() >= 0.4
    assert (exps.loc[steep, "r2"] > 0.9).all() and (exps["r2"] <= 1.0).all()
    # long bootstrap table: one row per group × replicate
    assert len(boot) == len(exps) * 400
    assert list(boot.columns) == [
        "scheme",
        "activation",
        "depth",
        "s",
        "layer",
        "layer_name",
        "boot",
        "slope",
    ]
    # intercept: log(0.3) for noise-free data
    clean = synthetic_runs(true_slope, noise=0.0, seeds=range(2))
    e0, _ = fit_exponents(clean, n_boot=0)
    np.testing.assert_allclose(e0["slope"], true_slope(e0["s"], e0["layer"]), atol=1e-10)
    np.testing.assert_allclose(e0["intercept"], np.log(0.3), atol=1e-10)
    np.testing.assert_allclose(e0["r2"][e0["slope"].abs() > 1e-6], 1.0)


def test_bootstrap_is_deterministic_and_resamples_seeds():
    runs = synthetic_runs(true_slope, schemes=("lecun",), depths=(1,), s_grid=(0.5,))
    a, ba = fit_exponents(runs, n_boot=200, seed=3)
    b, bb = fit_exponents(runs, n_boot=200, seed=3)
    c, _ = fit_exponents(runs, n_boot=200, seed=4)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(ba, bb)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    # with one seed there is no spread to resample: no interval, no replicates
    one, bone = fit_exponents(runs[runs["seed"] == 0], n_boot=50)
    assert one["slope"].notna().all() and one["ci_low"].isna().all()
    assert (one["n_boot"] == 0).all() and bone["slope"].isna().all()


def test_excluded_rows_are_counted_and_degenerate_groups_are_nan():
    runs = synthetic_runs(true_slope, schemes=("lecun",), depths=(1,), s_grid=(0.0, 0.5))
    sel = (runs["s"] == 0.5) & (runs["layer"] == 1)
    idx = runs.index[sel]
    runs.loc[idx[:3], "status"] = "diverged"
    runs.loc[idx[:3], "rd_final"] = 1e6  # would wreck the fit if kept
    runs.loc[idx[3], "rd_final"] = 0.0
    runs.loc[idx[4], "rd_final"] = np.nan
    runs.loc[idx[5], "rd_final"] = np.inf
    # a group with a single width after exclusion → NaN slope, no crash
    one = (runs["s"] == 0.0) & (runs["layer"] == 2)
    runs.loc[one & (runs["m"] != 64), "status"] = "diverged"
    exps, boot = fit_exponents(runs, n_boot=100)
    row = exps[(exps["s"] == 0.5) & (exps["layer"] == 1)].iloc[0]
    assert row["n_excluded"] == 6
    assert row["n_obs"] == 5 * 8 - 6
    assert abs(row["slope"] - true_slope(0.5, 1)) < 0.08
    deg = exps[(exps["s"] == 0.0) & (exps["layer"] == 2)].iloc[0]
    assert deg["n_m"] == 1 and np.isnan(deg["slope"]) and np.isnan(deg["ci_low"])
    assert deg["n_excluded"] == 4 * 8
    assert boot.loc[(boot["s"] == 0.0) & (boot["layer"] == 2), "slope"].isna().all()
    # a table without any kept row, and an empty table: NaN / empty, never a crash
    e3, b3 = fit_exponents(runs.assign(status="diverged"), n_boot=10)
    assert e3["slope"].isna().all() and (e3["n_excluded"] == 5 * 8).all()
    assert len(b3) == len(e3) * 10 and b3["slope"].isna().all()
    assert "no crossing" in thresholds(e3, b3)["note"].iloc[0]
    e4, b4 = fit_exponents(runs.iloc[0:0])
    assert e4.empty and b4.empty and "ci_high" in e4.columns and thresholds(e4, b4).empty
    # status "max_steps" is kept by default, excluded on request
    runs.loc[idx[6], "status"] = "max_steps"
    e2, _ = fit_exponents(runs, n_boot=0, exclude_status=("diverged", "max_steps"))
    assert e2.loc[(e2["s"] == 0.5) & (e2["layer"] == 1), "n_excluded"].item() == 7


def test_threshold_recovers_a_known_crossing():
    # slope(s) = 0.2 − s for every layer ⇒ s* = 0.2
    runs = synthetic_runs(lambda s, layer: 0.2 - s, depths=(2,))
    exps, boot = fit_exponents(runs, n_boot=500, seed=0)
    thr = thresholds(exps, boot)
    assert len(thr) == 2 * 3
    assert (thr["s_star"] - 0.2).abs().max() < 0.04
    assert ((thr["s_star_low"] <= 0.2) & (0.2 <= thr["s_star_high"])).mean() >= 0.8
    assert (thr["s_star_high"] - thr["s_star_low"]).max() < 0.15
    assert (thr["frac_boot_cross"] > 0.95).all()
    assert (thr["n_crossings"] == 1).all() and (thr["note"] == "").all()
    assert thr["lazy_side_negative"].all() and thr["lazy_side_ci_negative"].all()
    assert (thr["s_min"] == -0.5).all() and (thr["s_max"] == 1.0).all()


def test_threshold_without_crossing():
    runs = synthetic_runs(lambda s, layer: -0.6 - s, schemes=("lecun",), depths=(1,))
    exps, boot = fit_exponents(runs, n_boot=100)
    thr = thresholds(exps, boot)
    assert NO_CROSSING == "no crossing in the grid's range"
    assert thr["note"].str.startswith(f"{NO_CROSSING}: exponent < 0 at every s (lazy over").all()
    assert thr["s_star"].isna().all() and thr["s_star_low"].isna().all()
    assert (thr["frac_boot_cross"] == 0).all()
    assert thr["lazy_side_negative"].all()
    # all positive: no crossing either, and the lazy side is not negative
    runs = synthetic_runs(lambda s, layer: 2.0 + s, schemes=("lecun",), depths=(1,))
    thr = thresholds(*fit_exponents(runs, n_boot=50))
    assert thr["note"].str.contains("no lazy side in the grid").all()
    assert not thr["lazy_side_negative"].any()


def _table(s, slopes, ci_high=None):
    """A hand-made exponents table of one group and its bootstrap (replicates = estimate)."""
    s, slopes = np.asarray(s, float), np.asarray(slopes, float)
    e = pd.DataFrame(
        {
            "scheme": "lecun",
            "activation": "relu",
            "depth": 1,
            "s": s,
            "layer": 1,
            "layer_name": "W1",
            "slope": slopes,
            "ci_high": slopes + 0.05 if ci_high is None else ci_high,
        }
    )
    b = e.drop(columns="ci_high").loc[np.repeat(e.index, 10)].reset_index(drop=True)
    b["boot"] = np.tile(np.arange(10), len(e))
    return e, b[["scheme", "activation", "depth", "s", "layer", "layer_name", "boot", "slope"]]


def test_threshold_interpolation_and_several_crossings():
    thr = thresholds(*_table([0.0, 0.1, 0.2], [0.3, 0.1, -0.1]))
    assert thr["s_star"].item() == pytest.approx(0.15)
    assert thr["s_star_low"].item() == pytest.approx(0.15)
    assert thr["frac_boot_cross"].item() == 1.0
    # exponent 0 at a grid point counts as ≥ 0
    assert thresholds(*_table([0.0, 0.5], [0.0, -1.0]))["s_star"].item() == pytest.approx(0.0)
    # two down-crossings: the larger s is reported, and the note says so
    thr = thresholds(*_table([0.0, 0.25, 0.5, 0.75], [0.5, -0.1, 0.2, -0.3]))
    assert thr["s_star"].item() == pytest.approx(0.5 + 0.25 * 0.2 / 0.5)
    assert thr["n_crossings"].item() == 2 and "largest s" in thr["note"].item()
    # a NaN exponent is skipped: the crossing is found across it
    thr = thresholds(*_table([-0.5, 0.0, 0.25, 0.5], [0.2, 0.1, np.nan, -0.1]))
    assert thr["s_star"].item() == pytest.approx(0.25)
    assert not thr["lazy_side_negative"].item()  # NaN at s = 0.25 > 0 is not "negative"
    # the ci flag is stricter than the estimate
    e, b = _table([-0.5, 0.5, 1.0], [0.1, -0.1, -0.2], ci_high=np.array([0.2, 0.05, -0.1]))
    thr = thresholds(e, b)
    assert thr["lazy_side_negative"].item() and not thr["lazy_side_ci_negative"].item()


def test_fit_is_fast_enough():
    """1000 replicates × 420 groups (3 schemes, 2 activations, depths 1–2, 7 s) in seconds."""
    base = synthetic_runs(true_slope, schemes=("lecun", "xavier", "uniform:0.25"), seeds=range(3))
    runs = pd.concat([base, base.assign(activation="relu")], ignore_index=True)
    t0 = time.perf_counter()
    exps, boot = fit_exponents(runs, n_boot=1000)
    thr = thresholds(exps, boot)
    elapsed = time.perf_counter() - t0
    assert len(exps) == 3 * 2 * 7 * 5 and len(thr) == 3 * 2 * 5
    assert elapsed < 10.0, elapsed


def test_loss_decay_prediction_and_measured_rate():
    assert loss_decay_prediction(1.0, 2.0, 3.0, 4.0) == pytest.approx(2.0 * np.exp(-1.5))
    assert linearized_rate(3.0, 4.0) == pytest.approx(1.5)
    t = np.linspace(0.0, 10.0, 11)
    np.testing.assert_allclose(
        loss_decay_prediction(t, 2.0, 3.0, 4.0), 2.0 * np.exp(-1.5 * t), rtol=1e-12
    )
    # exact exponential with rate 0.7, then a floor: the fit stops at R/R0 = 1e-2
    loss = np.maximum(5.0 * np.exp(-0.7 * t), 5.0 * 1e-3)
    traj = pd.DataFrame({"t": t[::-1], "train_loss": loss[::-1], "seed": 0})  # order-free
    assert measured_decay_rate(traj) == pytest.approx(0.7, rel=1e-9)
    # several seeds: the median of the per-seed rates
    multi = pd.concat(
        [
            pd.DataFrame({"t": t, "train_loss": np.exp(-r * t), "seed": k})
            for k, r in enumerate((0.2, 0.3, 0.9))
        ],
        ignore_index=True,
    )
    assert measured_decay_rate(multi) == pytest.approx(0.3, rel=1e-9)
    # a drop by 1e4 at the second snapshot: the first two snapshots give a (lower-bound) rate
    fast = pd.DataFrame({"t": [0.0, 1.0, 2.0], "train_loss": [1.0, 1e-4, 1e-5]})
    assert measured_decay_rate(fast) == pytest.approx(np.log(1e4))
    assert np.isnan(measured_decay_rate(pd.DataFrame({"t": [0.0], "train_loss": [1.0]})))


def test_threshold_interval_covers_a_known_crossing_over_all_resamples():
    """Coverage: over 30 synthetic studies with s* = 0.2 (8 seeds, noisy), the 90 % interval,
    computed over all resamples (non-crossing ones count), holds the truth in >= 80 % of them
    (measured 28 of 30; with 5 seeds 22 of 30: the seed bootstrap undercovers with few seeds)."""
    hits = []
    for rng_seed in range(30):
        runs = synthetic_runs(lambda s, layer: 0.2 - s, schemes=("lecun",), depths=(1,),
                              seeds=range(8), noise=0.4, rng_seed=rng_seed)  # fmt: skip
        thr = thresholds(*fit_exponents(runs, n_boot=200, seed=rng_seed))
        w1 = thr[thr["layer"] == 1].iloc[0]
        assert np.isfinite(w1["s_star_low"]) and w1["s_star_low"] <= w1["s_star"] <= w1["s_star_high"]
        hits.append(w1["s_star_low"] <= 0.2 <= w1["s_star_high"])
    assert np.mean(hits) >= 0.8, np.mean(hits)


def test_two_seeds_give_no_interval_and_say_why():
    runs = synthetic_runs(lambda s, layer: 0.2 - s, schemes=("lecun",), depths=(1,), seeds=range(2))
    thr = thresholds(*fit_exponents(runs, n_boot=100))
    assert thr["s_star_low"].isna().all() and thr["s_star_high"].isna().all()
    assert thr["s_star"].notna().all()
    assert thr["note"].str.contains("no interval: 2 seeds").all()


def test_edge_crossing_and_unsupported_bound_are_noted():
    # exponent crosses between the two smallest s: noted; resamples that stay < 0 everywhere
    # put the lower bound below the grid
    e, b = _table([0.0, 0.5, 1.0], [0.01, -0.5, -1.0])
    b.loc[(b["boot"] < 5) & (b["s"] == 0.0), "slope"] = -0.01  # half the resamples: no crossing
    thr = thresholds(e.assign(n_seeds=5), b)
    r = thr.iloc[0]
    assert "first grid interval" in r["note"] and "below the grid" in r["note"]
    assert np.isnan(r["s_star_low"]) and r["frac_boot_cross"] == 0.5


def test_grid_bracket_and_bisection_midpoint():
    from lazyphase.stats import bisection_midpoint, grid_bracket

    grid = np.array([-0.5, 0.0, 0.5, 1.0])
    assert grid_bracket(grid, 0.2) == (0.0, 0.5)
    assert grid_bracket(grid, 0.5) == (0.5, 1.0)  # on a grid value: the interval above it
    assert np.isnan(grid_bracket(grid, 1.2)[1]) and np.isnan(grid_bracket(grid, np.nan)[0])
    assert bisection_midpoint(0.0, 0.5, 0.1) == 0.25
    assert bisection_midpoint(0.0, 0.2, 0.1) is None  # half-width 0.1: narrow enough
    assert bisection_midpoint(0.0, np.nan, 0.1) is None
