"""Precision-targeted sampling (pipeline/precision.py): the rounds stop exactly when the target
is met or a cap (seeds, CPU-hours) is hit; on a small config one extra round narrows the
interval."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import smk

from lazyphase.cells import ConfigError
from lazyphase.pipeline import precision
from lazyphase.store.files import read_table


def _rounds(c, target, *, n0=3, cost=0.0, cap=None, max_seeds=12, growth=1.5, rounds=20):
    """Synthetic exponents whose interval width is c / sqrt(seeds): the seeds per round, the
    rounds that trained and each group's final stop."""
    c = np.atleast_1d(np.asarray(c, dtype=float))
    n = np.full(c.shape, n0)
    spent, history = 0.0, [n.copy()]
    for r in range(rounds):
        iv = pd.DataFrame({"estimate": np.full(c.shape, -0.5), "ci_width": c / np.sqrt(n)})
        dec = precision.next_round(
            iv,
            n,
            target=target,
            max_seeds=max_seeds,
            growth=growth,
            cpu_hours_used=spent,
            cpu_hours_per_seed=cost,
            cpu_hours=cap,
        )
        if (dec["stop"] != "").all():
            return history, r, list(dec["stop"])
        spent += float(((dec["n_seeds_next"] - n) * cost).sum())
        n = dec["n_seeds_next"].to_numpy()
        history.append(n.copy())
    raise AssertionError("the rounds did not stop")


def test_next_seeds_grows_by_the_factor_and_caps():
    assert [precision.next_seeds(n, 1.5, 12) for n in (2, 3, 5, 8, 12)] == [3, 5, 8, 12, 12]
    assert precision.next_seeds(1, 1.5, 12) == 2  # always at least one more


@pytest.mark.parametrize(
    ("c", "target", "seeds", "n_rounds"),
    [
        (1.0, 0.45, [3, 5], 1),  # 1/sqrt(3) = 0.577 > 0.45 ≥ 1/sqrt(5) = 0.447
        (1.0, 0.30, [3, 5, 8, 12], 3),  # 1/sqrt(8) = 0.354 > 0.30 ≥ 1/sqrt(12) = 0.289
        (1.0, 0.60, [3], 0),  # met on the coarse grid: no round at all
    ],
)
def test_rounds_stop_exactly_when_the_target_is_met(c, target, seeds, n_rounds):
    history, r, stop = _rounds(c, target)
    assert [int(h[0]) for h in history] == seeds
    assert r == n_rounds and stop == ["met"]
    # one round fewer would not have met it
    assert c / math.sqrt(seeds[-1]) <= target
    if len(seeds) > 1:
        assert c / math.sqrt(seeds[-2]) > target


def test_rounds_stop_at_the_seed_cap():
    history, r, stop = _rounds(1.0, 0.2)  # needs 25 seeds > 12
    assert [int(h[0]) for h in history] == [3, 5, 8, 12]
    assert r == 3 and stop == ["max_seeds"]
    history, r, stop = _rounds(1.0, 0.2, max_seeds=6)
    assert [int(h[0]) for h in history] == [3, 5, 6] and stop == ["max_seeds"]


def test_rounds_stop_at_the_cpu_cap():
    # 1 CPU-hour per seed, 4 allowed: 3 → 5 costs 2, 5 → 8 would take the total to 5 > 4
    history, r, stop = _rounds(1.0, 0.2, cost=1.0, cap=4.0)
    assert [int(h[0]) for h in history] == [3, 5]
    assert r == 1 and stop == ["cpu_hours"]
    # an exact fit of the cap still trains: 2 + 3 = 5 ≤ 5
    history, _, stop = _rounds(1.0, 0.2, cost=1.0, cap=5.0)
    assert [int(h[0]) for h in history] == [3, 5, 8] and stop == ["cpu_hours"]


def test_the_cpu_cap_serves_the_widest_interval_first():
    iv = pd.DataFrame({"estimate": [0.1, 0.2], "ci_width": [0.5, 0.9]})
    dec = precision.next_round(iv, [3, 3], target=0.1, cpu_hours_per_seed=1.0, cpu_hours=2.5)
    assert list(dec["stop"]) == ["cpu_hours", ""]
    assert list(dec["n_seeds_next"]) == [3, 5]


def test_groups_stop_independently_and_without_an_estimate():
    history, r, stop = _rounds([0.5, 1.0], 0.30)  # 0.5/sqrt(3) = 0.289 met at once
    assert [list(h) for h in history] == [[3, 3], [3, 5], [3, 8], [3, 12]]
    assert stop == ["met", "met"] and r == 3
    iv = pd.DataFrame({"estimate": [np.nan, 0.1], "ci_width": [np.nan, np.nan]})
    dec = precision.next_round(iv, [3, 2], target=0.1)
    # no crossing: seeds cannot make an interval; no interval yet (2 seeds): more seeds
    assert list(dec["stop"]) == ["no estimate", ""] and list(dec["n_seeds_next"]) == [3, 3]


def test_a_width_is_added_where_seeds_cannot_reach_the_target():
    iv = pd.DataFrame({"estimate": [0.1, 0.1], "ci_width": [0.5, 2.0]})
    dec = precision.next_round(iv, [3, 3], target=0.3, max_seeds=12, widths_left=1)
    # at 12 seeds: 0.5 · sqrt(3/12) = 0.25 ≤ 0.3 (seeds suffice); 2.0 · 0.5 = 1.0 > 0.3
    assert list(dec["add_width"]) == [False, True]
    dec = precision.next_round(iv, [3, 3], target=0.3, widths_left=0)
    assert not dec["add_width"].any()


def test_new_seeds_are_the_smallest_unused():
    assert precision.new_seeds([0, 1, 2], 5) == [3, 4]
    assert precision.new_seeds([0, 2], 4) == [1, 3]
    assert precision.new_seeds([0, 1], 2) == []


def test_target_of_reads_the_keys_and_refuses_a_wrong_quantity():
    assert precision.target_of({"kind": "train"}) is None
    t = precision.target_of({"kind": "phase_diagram", "target_ci_width": 0.2,
                             "target_on": "gamma_star", "target_widths": [64]})  # fmt: skip
    assert (t.ci_width, t.on, t.max_seeds, t.growth, t.widths) == (
        0.2,
        "gamma_star",
        12,
        1.5,
        (64,),
    )
    with pytest.raises(ConfigError, match="target_on: 'gamma_star' is not reported by a 'train'"):
        precision.target_of(
            {"kind": "train", "target_ci_width": 0.2, "target_on": "gamma_star"}, "x"
        )


PRECISION_TINY = Path(__file__).parent / "configs" / "precision_tiny.yaml"


@pytest.fixture(scope="module")
def precision_run(tmp_path_factory):
    """tests/configs/precision_tiny.yaml up to its precision tables (no figures)."""
    work = tmp_path_factory.mktemp("precision_run")
    r = smk("--cores", "1", "--configfile", str(PRECISION_TINY), "--replace-workflow-config",
            "--directory", str(work), "results/theta_lazy/precision.csv",
            "results/phase_diagram/boundary.csv")  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work / "results"


def test_one_extra_round_narrows_every_exponent_interval(precision_run):
    coarse = read_table(precision_run / "theta_lazy" / "exponents.csv")
    final = read_table(precision_run / "theta_lazy" / "precision.csv")
    both = coarse.merge(final, on=["scheme", "activation", "depth", "s", "layer_name"])
    assert len(both) == 4
    assert (both["n_seeds_x"] == 3).all() and (both["n_seeds_y"] == 5).all()  # 3 → ceil(4.5)
    assert (final["rounds"] == 1).all() and (final["stop"] == "rounds").all()
    assert not final["target_met"].any()  # a target of 0.001 is out of reach
    narrowed = both["ci_width"] / (both["ci_high"] - both["ci_low"])
    assert (narrowed < 0.9).all(), narrowed  # two more seeds and one more width
    new = read_table(precision_run / "theta_lazy" / "precision" / "runs.parquet")
    # the new seeds 3, 4 at the grid's widths; the added width 64 with all five seeds
    assert sorted(new.loc[new["m"] < 64, "seed"].unique()) == [3, 4]
    assert sorted(new.loc[new["m"] == 64, "seed"].unique()) == [0, 1, 2, 3, 4]


def test_the_precision_round_gives_the_bisection_point_the_same_seeds(precision_run):
    folder = precision_run / "phase_diagram"
    new = read_table(folder / "precision" / "runs.parquet")
    fine = read_table(folder / "refine" / "runs.parquet")
    # the bisection point γ = 1 (s = 0) got the precision round's seeds like the grid points
    assert 0.0 in set(fine["s"]) and set(new["s"]) == {0.5, 0.0, -0.5}
    assert set(new["seed"]) == {3, 4}
    final = read_table(folder / "precision.csv")
    boundary = read_table(folder / "boundary.csv")
    # boundary.csv is built from the same runs: the same γ* and interval
    assert final["estimate"].iloc[0] == pytest.approx(boundary["gamma_star"].iloc[0], abs=1e-12)
    assert final["ci_width"].iloc[0] == pytest.approx(
        boundary["gamma_star_high"].iloc[0] - boundary["gamma_star_low"].iloc[0], abs=1e-12
    )
    assert final["n_seeds"].iloc[0] == 5


def _synthetic_runs(scheme: str, n_seeds: int = 5, depth: int = 2) -> pd.DataFrame:
    """Runs whose exponent of layer l is 0.3 − s + 0.1 l plus seed noise (σ = 0.2 in log RD)."""
    rng = np.random.default_rng(1)
    rows = []
    names = [f"W{k}" for k in range(1, depth + 1)] + ["a"]
    for s in (-0.5, 0.0, 0.5, 1.0):
        for m in (16, 32, 64, 128):
            for seed in range(n_seeds):
                for layer, name in enumerate(names, start=1):
                    slope = 0.3 - s + 0.1 * layer
                    rows.append(dict(scheme=scheme, activation="tanh", depth=depth, s=s, m=m,
                                     seed=seed, layer=layer, layer_name=name, status="converged",
                                     final_step=100,
                                     rd_final=float(m**slope * np.exp(0.2 * rng.normal()))))  # fmt: skip
    return pd.DataFrame(rows)


def test_intervals_are_those_the_tables_report():
    from lazyphase import stats
    from lazyphase.studies.deep_phase.analysis import deep_phase_table
    from lazyphase.studies.phase.analysis import phase_table

    runs = _synthetic_runs("deep:0.5")
    _, boundary = deep_phase_table(runs, n_boot=200)
    iv = precision.intervals("deep_phase", "s_star", runs, n_boot=200)
    both = iv.merge(boundary, on=["activation", "depth", "layer_name"])
    assert len(both) == 3
    np.testing.assert_allclose(both["estimate"], both["s_star"], atol=1e-12)
    np.testing.assert_allclose(
        both["ci_width"], both["s_star_high"] - both["s_star_low"], atol=1e-12
    )
    groups = precision.cell_groups(iv, "s_star")  # one cell group: its widest layer
    assert len(groups) == 1 and groups["ci_width"].iloc[0] == pytest.approx(iv["ci_width"].max())

    exps, _ = stats.fit_exponents(runs, n_boot=200)
    iv = precision.intervals("train", "exponent", runs, n_boot=200)
    np.testing.assert_allclose(iv["ci_width"], exps["ci_high"] - exps["ci_low"], atol=1e-12)
    assert len(precision.cell_groups(iv, "exponent")) == 4  # one per s

    luo = _synthetic_runs("luo:0", depth=1)
    _, b1 = phase_table(luo, n_boot=200)
    iv = precision.intervals("phase", "gamma_star", luo, n_boot=200)
    assert iv["estimate"].iloc[0] == pytest.approx(b1["gamma_star"].iloc[0], abs=1e-12)
    assert iv["ci_width"].iloc[0] == pytest.approx(
        b1["gamma_star_high"].iloc[0] - b1["gamma_star_low"].iloc[0], abs=1e-12
    )


def test_validation_names_a_target_the_kind_does_not_report():
    import yaml

    from lazyphase.pipeline.config import validate_config

    schema = yaml.safe_load(
        (Path(__file__).parents[1] / "workflow/schemas/config.schema.yaml").read_text()
    )
    cfg = yaml.safe_load(PRECISION_TINY.read_text())
    filled = validate_config(cfg, schema)
    assert filled["experiments"]["theta_lazy"]["target_max_seeds"] == 12  # the defaults
    cfg["experiments"]["theta_lazy"]["target_on"] = "gamma_star"
    with pytest.raises(ConfigError, match=r"experiments.theta_lazy.target_on: 'gamma_star'"):
        validate_config(cfg, schema)
    cfg["experiments"]["theta_lazy"]["target_on"] = "s_star"
    cfg["experiments"]["theta_lazy"]["target_growth"] = 1.0
    with pytest.raises(ConfigError, match="target_growth"):
        validate_config(cfg, schema)


def test_the_summary_says_in_one_line_how_many_met_the_target(tmp_path):
    from lazyphase.pipeline.summary import summarize_experiment
    from lazyphase.store.files import write_table

    folder = tmp_path / "results" / "a2"
    folder.mkdir(parents=True)
    table = pd.DataFrame({"target_met": [True, True, False], "target_on": "exponent",
                          "target": 0.45, "rounds": 2, "n_seeds": [3, 5, 12],
                          "stop": ["met", "met", "max_seeds"]})  # fmt: skip
    write_table(table, str(folder / "precision.csv"))
    lines = [x for x in summarize_experiment("a2", {"kind": "train"}, tmp_path) if "precision" in x]
    assert lines == ["  precision (precision.csv): 2 of 3 exponent intervals within 0.45 after "
                     "2 round(s), 3-12 seeds; not met: max_seeds 1"]  # fmt: skip


def test_a_round_trains_new_seeds_at_every_width_the_group_has():
    import yaml

    from lazyphase.pipeline.grid import expand_config
    from lazyphase.pipeline.steps import _precision_cells

    cfg = yaml.safe_load(PRECISION_TINY.read_text())
    cells = list(
        expand_config({"experiments": {"theta_lazy": cfg["experiments"]["theta_lazy"]}})["params"]
    )
    runs = pd.concat(
        [_synthetic_runs("lecun", n_seeds=5, depth=1).assign(s=s) for s in (-0.25, 0.5)]
    )
    runs = runs[(runs["m"] <= 32) | (runs["s"] == 0.5) & (runs["m"] == 64)]  # 64 added for s = 0.5
    todo = pd.DataFrame([dict(scheme="lecun", activation="tanh", depth=1, s=0.5,
                              n_seeds_next=8, add_width=False),
                         dict(scheme="lecun", activation="tanh", depth=1, s=-0.25,
                              n_seeds_next=8, add_width=True)])  # fmt: skip
    target = precision.Target(ci_width=0.1, widths=(128,))
    batches = _precision_cells(cells, runs, todo, target, [128])
    got = {(key[0][1], c["s"]): c["seeds"] for key, b in batches.items() for c in b}
    assert got == {
        (16, 0.5): [5, 6, 7],
        (32, 0.5): [5, 6, 7],
        (64, 0.5): [5, 6, 7],  # 64: its own width
        (16, -0.25): [5, 6, 7],
        (32, -0.25): [5, 6, 7],
        (128, -0.25): [0, 1, 2, 3, 4, 5, 6, 7],  # the added width: every seed
    }


def test_a_layer_without_an_estimate_does_not_stop_its_group():
    iv = pd.DataFrame({"scheme": "deep:0.5", "activation": "tanh", "depth": 2,
                       "layer_name": ["W1", "W2", "a"], "estimate": [-0.2, np.nan, 0.1],
                       "low": [-0.4, np.nan, 0.0], "high": [0.0, np.nan, 0.15],
                       "n_seeds": 3})  # fmt: skip
    iv["ci_width"] = iv["high"] - iv["low"]
    g = precision.cell_groups(iv, "s_star")
    assert len(g) == 1 and g["layer_name"].iloc[0] == "W1" and g["ci_width"].iloc[0] == 0.4
    assert precision.next_round(g, g["n_seeds"], target=0.1)["stop"].iloc[0] == ""
    only_nan = precision.cell_groups(iv.iloc[[1]], "s_star")
    assert precision.next_round(only_nan, [3], target=0.1)["stop"].iloc[0] == "no estimate"
