"""Golden numbers (lazyphase.pipeline.golden): the tiny workflows' key numbers against the
stored values in tests/golden/tiny.json, and the comparison itself on numbers that must fail."""

from __future__ import annotations

import math

import pandas as pd

from lazyphase.pipeline import golden


def _threshold() -> pd.DataFrame:
    return pd.DataFrame({"activation": ["tanh", "tanh"], "layer": [1, 2],
                         "s_star": [0.5, math.nan], "s_star_low": [0.4, math.nan],
                         "note": ["", "no crossing"], "n_s": [3, 3]})  # fmt: skip


def test_each_row_and_column_is_one_named_number():
    nums = golden.table_numbers(_threshold(), "theta_lazy/threshold.csv", golden.NUMBERS["threshold.csv"])
    assert nums.keys() == {
        "theta_lazy/threshold.csv s_star [layer=1]",
        "theta_lazy/threshold.csv s_star_low [layer=1]",
        "theta_lazy/threshold.csv s_star [layer=2]",
        "theta_lazy/threshold.csv s_star_low [layer=2]",
    }  # the note and the count n_s are neither numbers nor keys; a key equal in every row
    # (activation) names nothing
    assert nums["theta_lazy/threshold.csv s_star [layer=1]"] == 0.5


def test_a_shifted_threshold_fails_naming_the_number_and_both_values():
    nums = golden.table_numbers(_threshold(), "theta_lazy/threshold.csv", ("s_star", "s_star_low"))
    tol = golden.tolerances(nums, [{k: v + 1e-6 for k, v in nums.items()}])
    record = golden.golden_record(nums, tol, "test")
    name = "theta_lazy/threshold.csv s_star [layer=1]"
    assert math.isclose(record["numbers"][name]["tol"], 100 * 1e-6 + 0.5e-9 + 1e-12, rel_tol=1e-6)
    assert golden.compare(nums, record) == []  # NaN against NaN is equal
    moved = dict(nums) | {name: 0.7}
    assert golden.compare(moved, record) == [f"{name}: stored 0.5, now 0.7 (tolerance 0.0001)"]
    inside = dict(nums) | {name: 0.5 + 5e-5}
    assert golden.compare(inside, record) == []
    nan = dict(nums) | {name: math.nan}
    assert len(golden.compare(nan, record)) == 1
    gone = {k: v for k, v in nums.items() if k != name}
    assert golden.compare(gone, record) == [f"{name}: stored 0.5, now missing"]
    extra = dict(nums) | {"x new": 1.0}
    assert golden.compare(extra, record) == ["x new: new, 1 (not stored)"]


def test_the_tiny_workflows_reproduce_their_golden_numbers(tiny_run, chizat_run):
    """A change of science fails here: rerun `make golden` (docs/reproducibility.md) when the
    change is meant, and commit tests/golden/tiny.json with it."""
    stored = golden.read_golden()
    numbers = golden.key_numbers(tiny_run / "results") | golden.key_numbers(chizat_run)
    assert len(stored["numbers"]) >= 100
    lines = golden.compare(numbers, stored)
    assert not lines, "golden numbers moved (`make golden` updates them):\n" + "\n".join(lines)
