"""Figures A1, A2, A3, A5 write readable PDF and PNG files, also from awkward tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from lazyphase.stats import fit_exponents, thresholds
from lazyphase.studies.theta_lazy.figures import (
    plot_gram_drift,
    plot_loss_decay,
    plot_theta_lazy_rd,
    plot_theta_lazy_threshold,
)

pytestmark = pytest.mark.filterwarnings(
    "error::DeprecationWarning",
    "error::FutureWarning",
    "error::UserWarning",
    "error::RuntimeWarning",
)

S_GRID = (-0.25, 0.25, 0.75)
WIDTHS = (32, 64, 128)


def _runs(schemes=("lecun",), rng_seed: int = 0) -> pd.DataFrame:
    """Synthetic ``runs`` (tanh, depths 1 and 2: panels with and without ``W2``)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for scheme in schemes:
        for activation in ("tanh",):
            for depth in (1, 2):
                for s in S_GRID:
                    for m in WIDTHS:
                        for seed in (0, 1):
                            for layer in range(1, depth + 2):
                                slope = 0.2 - s
                                rows.append(
                                    {
                                        "experiment": "theta_lazy",
                                        "scheme": scheme,
                                        "activation": activation,
                                        "depth": depth,
                                        "s": s,
                                        "kappa": m**s,
                                        "m": m,
                                        "seed": seed,
                                        "layer": layer,
                                        "layer_name": f"W{layer}" if layer <= depth else "a",
                                        "rd_final": 0.5 * m**slope * np.exp(rng.normal(0, 0.1)),
                                        "gram_drift": 0.2
                                        * m ** (slope - 0.3)
                                        * np.exp(rng.normal(0, 0.1)),
                                        "status": "converged",
                                        "n": 16,
                                    }
                                )
    return pd.DataFrame(rows)


def _traj(runs: pd.DataFrame) -> pd.DataFrame:
    reps = runs.drop_duplicates(["scheme", "activation", "depth", "s", "m", "seed"])
    parts = []
    t = np.linspace(0.0, 20.0, 21)
    for r in reps.itertuples(index=False):
        lam = 0.5 + 0.1 * r.seed + 0.2 * r.s
        rate = 2 * lam / 16 * 1.3
        parts.append(
            pd.DataFrame(
                {
                    "experiment": r.experiment,
                    "m": r.m,
                    "depth": r.depth,
                    "s": r.s,
                    "scheme": r.scheme,
                    "activation": r.activation,
                    "seed": r.seed,
                    "step": np.arange(t.size) * 10,
                    "t": t,
                    "train_loss": 0.4 * np.exp(-rate * t),
                    "test_loss": 0.5 * np.exp(-rate * t),
                    "lambda_min_theta0": lam,
                    "n": 16,
                    "status": "converged",
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _check(pdf, png) -> None:
    assert pdf.stat().st_size > 1000 and png.stat().st_size > 1000
    assert pdf.read_bytes()[:5] == b"%PDF-"
    img = imread(png)
    assert img.ndim == 3 and img.shape[2] in (3, 4) and min(img.shape[:2]) > 200
    assert img.shape[1] <= 20 * 150  # at most 20 inches wide at 150 dpi


@pytest.fixture(scope="module")
def tables():
    runs = _runs(schemes=("lecun", "uniform:0.25"))
    exps, boot = fit_exponents(runs, n_boot=100)
    thr = thresholds(exps, boot)
    return runs, exps, thr, _traj(runs)


def test_theta_lazy_rd(tables, tmp_path):
    runs, exps, _, _ = tables
    runs = runs[runs["scheme"] == "lecun"].copy()
    runs.loc[runs.index[:3], "status"] = "diverged"
    plot_theta_lazy_rd(runs, exps, tmp_path / "a1.pdf", tmp_path / "a1.png")
    _check(tmp_path / "a1.pdf", tmp_path / "a1.png")


def test_theta_lazy_threshold(tables, tmp_path):
    _, exps, thr, _ = tables
    assert thr["s_star"].notna().all()  # the synthetic exponent 0.2 − s crosses in the grid
    plot_theta_lazy_threshold(exps, thr, tmp_path / "a2.pdf", tmp_path / "a2.png")
    _check(tmp_path / "a2.pdf", tmp_path / "a2.png")


def test_loss_decay_with_limit_column_and_stem(tables, tmp_path):
    traj = tables[3][tables[3]["scheme"] == "lecun"].assign(lambda_min_limit=0.45)
    plot_loss_decay(traj, tmp_path / "sub" / "a3")  # a path stem → a3.pdf and a3.png
    _check(tmp_path / "sub" / "a3.pdf", tmp_path / "sub" / "a3.png")
    plot_loss_decay(
        tables[3][tables[3]["depth"] == 1], tmp_path / "a3m.pdf", tmp_path / "a3m.png", m=32
    )
    _check(tmp_path / "a3m.pdf", tmp_path / "a3m.png")


def test_gram_drift(tables, tmp_path):
    runs = tables[0]
    runs = runs[(runs["depth"] == 2) & (runs["scheme"] == "lecun")]
    plot_gram_drift(runs, tmp_path / "a5.pdf", tmp_path / "a5.png")
    _check(tmp_path / "a5.pdf", tmp_path / "a5.png")


def test_empty_groups_and_nan_do_not_crash(tables, tmp_path):
    runs, _, _, traj = tables
    runs = runs.copy()
    # one (scheme, activation, depth) row is all NaN / all diverged, one layer empty, a NaN s
    nan_rows = runs["scheme"] == "lecun"
    runs.loc[nan_rows & (runs["depth"] == 1), ["rd_final", "gram_drift"]] = np.nan
    runs.loc[nan_rows & (runs["depth"] == 2), "status"] = "diverged"
    runs.loc[nan_rows & (runs["depth"] == 2) & (runs["seed"] == 0), "rd_final"] = np.inf
    uni = runs["scheme"] == "uniform:0.25"
    runs = runs[~(uni & ((runs["layer_name"] == "W2") | (runs["depth"] == 1)))]
    exps, boot = fit_exponents(runs, n_boot=50)
    assert exps["slope"].isna().any()
    exps.loc[exps.index[:2], ["ci_low", "ci_high"]] = np.nan
    thr = thresholds(exps, boot)
    # a CSV round trip turns the empty notes into NaN, as the pipeline does
    thr = pd.read_csv(pd.io.common.StringIO(thr.to_csv(index=False)))
    thr.loc[thr.index[0], ["s_star", "s_star_low", "s_star_high"]] = [0.1, np.nan, np.nan]
    plot_theta_lazy_rd(runs, exps, tmp_path / "a1.pdf", tmp_path / "a1.png")
    plot_theta_lazy_threshold(exps, thr, tmp_path / "a2.pdf", tmp_path / "a2.png")
    one = runs[(runs["scheme"] == "lecun") & (runs["depth"] == 1)]  # all NaN
    plot_gram_drift(one, tmp_path / "a5.pdf", tmp_path / "a5.png")
    traj = traj.copy()
    bad = (traj["scheme"] == "lecun") & (traj["depth"] == 1)
    traj.loc[bad, "train_loss"] = np.nan
    traj.loc[(traj["scheme"] == "lecun") & (traj["depth"] == 2), "lambda_min_theta0"] = np.nan
    traj.loc[(traj["scheme"] == "uniform:0.25") & (traj["depth"] == 1), "lambda_min_theta0"] = 0.0
    traj.loc[(traj["scheme"] == "uniform:0.25") & (traj["seed"] == 1), "status"] = "diverged"
    plot_loss_decay(traj, tmp_path / "a3.pdf", tmp_path / "a3.png")
    for name in ("a1", "a2", "a3", "a5"):
        _check(tmp_path / f"{name}.pdf", tmp_path / f"{name}.png")
    # completely empty tables still give a (blank) figure
    plot_theta_lazy_rd(runs.iloc[0:0], exps.iloc[0:0], tmp_path / "e1.pdf", tmp_path / "e1.png")
    plot_theta_lazy_threshold(
        exps.iloc[0:0], thr.iloc[0:0], tmp_path / "e2.pdf", tmp_path / "e2.png"
    )
    plot_loss_decay(traj.iloc[0:0], tmp_path / "e3.pdf", tmp_path / "e3.png")
    plot_gram_drift(runs.iloc[0:0], tmp_path / "e5.pdf", tmp_path / "e5.png")
    for name in ("e1", "e2", "e3", "e5"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def _with_fdist(runs: pd.DataFrame, rng_seed: int = 1) -> pd.DataFrame:
    """``fdist ∝ m^(0.1 − s)`` (crossing at s = 0.1) and the two test losses."""
    rng = np.random.default_rng(rng_seed)
    rep = runs.groupby(["scheme", "depth", "s", "m", "seed"]).ngroup().to_numpy()
    noise = np.exp(rng.normal(0, 0.01, rep.max() + 1))[rep]
    return runs.assign(
        fdist=0.3 * runs["m"] ** (0.1 - runs["s"]) * noise,
        test_loss_final=0.2 + 0.1 * runs["s"] ** 2,
        test_loss_lin=0.25 + 0.05 * runs["s"],
        test_loss_best=0.15,
    )


def test_function_distance_a6(tables, tmp_path):
    from lazyphase.stats import function_exponents, with_function_threshold
    from lazyphase.studies.theta_lazy.figures import plot_function_distance

    runs, _, thr, _ = tables
    runs = _with_fdist(runs)
    fexps, fthr = function_exponents(runs, n_boot=100)
    assert set(fexps["s"]) == set(S_GRID) and len(fexps) == 2 * 2 * len(S_GRID)
    np.testing.assert_allclose(fexps["slope"], 0.1 - fexps["s"], atol=0.05)
    assert np.allclose(fthr["s_star"], 0.1, atol=0.05) and fthr["lazy_side_negative"].all()
    thr2 = with_function_threshold(thr, fthr)
    assert len(thr2) == len(thr) and thr2["s_star_f"].notna().all()
    plot_function_distance(runs, fexps, thr2, tmp_path / "a6.pdf", tmp_path / "a6.png")
    _check(tmp_path / "a6.pdf", tmp_path / "a6.png")
    # no linearized run anywhere (all NaN): still a figure
    nan = runs.assign(fdist=np.nan, test_loss_lin=np.nan)
    fe, ft = function_exponents(nan, n_boot=10)
    assert fe["slope"].isna().all() and ft["s_star"].isna().all()
    plot_function_distance(nan, fe, with_function_threshold(thr, ft), tmp_path / "e6")
    _check(tmp_path / "e6.pdf", tmp_path / "e6.png")


def test_loss_decay_with_linearized_curve_and_gap(tables, tmp_path):
    from lazyphase.studies.theta_lazy.figures import loss_gap

    traj = tables[3][tables[3]["scheme"] == "lecun"]
    traj = traj.assign(train_loss_lin=traj["train_loss"] * 0.9)
    plot_loss_decay(traj, tmp_path / "a3.pdf", tmp_path / "a3.png")
    _check(tmp_path / "a3.pdf", tmp_path / "a3.png")
    t = np.array([0.0, 1.0, 2.0])
    assert loss_gap(t, np.array([1.0, 0.5, 0.3]), t, np.array([1.0, 0.5, 0.2])) == pytest.approx(0.5)
    assert np.isnan(loss_gap(t, np.ones(3), [], []))


def test_figure_families_import_only_common():
    """Each module of ``theta_lazy/figures/`` imports ``common`` and never another family."""
    import ast
    from pathlib import Path

    import lazyphase.studies.theta_lazy.figures as pkg

    here = "lazyphase.studies.theta_lazy.figures"
    bad = []
    for path in Path(pkg.__file__).parent.glob("*.py"):
        if path.stem == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(here + "."):
                if node.module != f"{here}.common" or path.stem == "common":
                    bad.append(f"{path.name} imports {node.module}")
    assert not bad, bad


def test_common_diverged_split_and_seed_geomean():
    from lazyphase.studies.theta_lazy.figures.common import diverged_split, seed_geomean

    runs = _runs()  # 2 depths x 3 s x 3 m x 2 seeds replicas, one row per layer
    runs.loc[(runs["seed"] == 1) & (runs["m"] == 64), "status"] = "diverged"
    kept, n_div = diverged_split(runs)
    assert n_div == 2 * 3  # (depth, s) at m = 64, seed 1, counted once over its layers
    assert len(kept) == len(runs) - (runs["status"] == "diverged").sum()
    assert diverged_split(runs.drop(columns="status"))[1] == 0
    d = pd.DataFrame({"m": [32, 32, 64], "y": [2.0, 8.0, 5.0]})
    np.testing.assert_allclose(seed_geomean(d, "y").to_numpy(), [4.0, 5.0])
