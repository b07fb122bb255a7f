"""The coordinate check (docs/conventions.md §7): μP's pre-activation updates are flat in width,
SP's output update grows like m under a width-independent step; the CLI writes its tables."""

from __future__ import annotations

import numpy as np
import pytest

from lazyphase.core.coord_check import update_sizes, width_slope
from lazyphase.pipeline.cli import main
from lazyphase.store.files import read_table
from lazyphase.studies.coord_check.analysis import coord_sizes, coord_slopes

WIDTHS = (64, 128, 256, 512)


@pytest.fixture(scope="module")
def slopes():
    sizes = coord_sizes(("sp", "mup"), WIDTHS, seeds=(0, 1))
    return coord_slopes(sizes).set_index(["parameterization", "layer_name"])


def test_mup_is_flat_in_every_layer(slopes):
    """Measured (depth 2, k = 3, η = 1e-4, 2 seeds): −0.02, −0.09, −0.07 for W1, W2, a."""
    mup = slopes.loc["mup"]
    assert len(mup) == 3
    assert np.all(np.abs(mup["slope"]) < 0.15), mup


def test_sp_output_update_grows_like_width(slopes):
    """SP at a width-independent step: Δf ∝ λ_max(Θ) ∝ m (measured slope 0.92); its hidden
    layer grows too (0.39) while W1's update shrinks (−0.52)."""
    sp = slopes.loc["sp"]
    assert sp.loc["a", "slope"] == pytest.approx(1.0, abs=0.15)
    assert sp.loc["W2", "slope"] > 0.2 and sp.loc["W1", "slope"] < -0.3


def test_the_first_step_is_linear_in_the_base_step():
    """One step: every pre-activation update of layer 1 and of the output is proportional to η
    at small η (the update is a gradient step, not a difference of two runs)."""
    small, double = (
        update_sizes("mup", 64, steps=1, lr=1e-6),
        update_sizes("mup", 64, steps=1, lr=2e-6),
    )
    np.testing.assert_allclose(double[[0, -1]], 2 * small[[0, -1]], rtol=1e-5)


def test_width_slope_of_a_power_law():
    slope, spread = width_slope([64, 256, 1024], np.array([1.0, 4.0, 16.0]) * 3)
    assert slope == pytest.approx(1.0, abs=1e-12) and spread == pytest.approx(16.0)


def test_cli_writes_the_tables_and_figure(tmp_path, capsys):
    rc = main(["coord-check", "--parameterization", "mup", "--widths", "64", "128",
               "--steps", "1", "--depth", "1", "--seeds", "0", "--out", str(tmp_path)])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert "| `mup` |" in out and "`W1` slope" in out
    table = read_table(tmp_path / "coord_check_slopes.csv")
    assert list(table["layer_name"]) == ["W1", "a"]
    assert (tmp_path / "coord_check.png").stat().st_size > 0
    assert len(read_table(tmp_path / "coord_check.csv")) == 4
