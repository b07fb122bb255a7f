"""The lr_phase_portrait tables (studies/lr_phase/analysis.py) on synthetic runs with known
exponents, stable steps and diverged cells."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from lazyphase.studies.lr_phase.analysis import largest_stable, portrait, stable_slopes

WIDTHS, ALPHAS, LRS = (64, 128, 256), (0.25, 1.0), (0.5, 1.5, 3.0)


def synthetic_runs() -> pd.DataFrame:
    """Runs table rows: RD(W1) = 0.1 m^{slope}, slope −1 below η_crit and 0 above (catapult);
    lr_c = 3 diverges; η_crit = 2 m^{−1} for sp and 2 for mup, so lr0 = lr_c η_crit."""
    rows = []
    for param, m, alpha, lr_c, seed, layer in itertools.product(
        ("mup", "sp"), WIDTHS, ALPHAS, LRS, (0, 1), (1, 2)
    ):
        slope = -1.0 if lr_c < 1 else 0.0
        crit = 2.0 / m if param == "sp" else 2.0
        rows.append(dict(
            parameterization=param, m=m, alpha=alpha, lr_c=lr_c, seed=seed, layer=layer,
            layer_name="W1" if layer == 1 else "a", rd_final=0.1 * m**slope * (1 + 0.01 * seed),
            status="diverged" if lr_c == 3.0 else "max_steps", lr0=lr_c * crit,
            eta_lambda_final=2 * lr_c if lr_c < 1 else 0.8, safeguard="none",
        ))  # fmt: skip
    return pd.DataFrame(rows)


def test_portrait_recovers_exponents_and_the_diverged_cells():
    table = portrait(synthetic_runs(), "sp").set_index(["alpha", "lr_c"])
    assert table.loc[(1.0, 0.5), "slope"] == pytest.approx(-1.0, abs=1e-9)
    assert table.loc[(1.0, 1.5), "slope"] == pytest.approx(0.0, abs=1e-9)
    assert table["is_diverged"].sum() == len(ALPHAS) and table.loc[(0.25, 3.0), "is_diverged"]
    assert table.loc[(1.0, 1.5), "eta_lambda"] == pytest.approx(0.8)
    assert np.isnan(table.loc[(1.0, 3.0), "slope"])


def test_largest_stable_step_and_its_width_slope():
    table = largest_stable(synthetic_runs())
    assert set(table["lr_c_max"]) == {1.5} and table["bounded"].all()
    assert (table["alpha"] == 1.0).all()
    slopes = stable_slopes(table).set_index("parameterization")["slope"]
    assert slopes["sp"] == pytest.approx(-1.0, abs=1e-9)
    assert slopes["mup"] == pytest.approx(0.0, abs=1e-9)


def test_diverged_and_catapulted_replicas_reach_the_runs_table(tmp_path):
    """Through the pipeline's writer and reader: a cell at η = 5/λ_max (diverges) and one at
    1.8/λ_max keep both their replicas, with status, parameterization, safeguard and
    η λ_max(Θ_T/n) (≈ 1.8: the kernel barely moves below η_crit at m = 256)."""
    from lazyphase.cells import validate_cell
    from lazyphase.pipeline.jobs import train_cells
    from lazyphase.store.tables import run_tables

    base = dict(m=256, d=4, n=16, n_test=8, parameterization="sp", lr_policy="critical",
                safeguard="none", max_steps=200, tol_rel=1e-8, n_gram_snapshots=2, seeds=[0, 1])  # fmt: skip
    cells = [validate_cell({**base, "lr_c": c}) for c in (2.5, 0.9)]
    outs = [str(tmp_path / f"c{k}.h5") for k in range(2)]
    train_cells(cells, outs)
    bad, good = (run_tables(p, "lr_phase")[0] for p in outs)
    assert set(bad["status"]) == {"diverged"} and len(bad) == 2 * 2  # 2 seeds x 2 layers
    assert set(good["status"]) <= {"max_steps", "converged"} and len(good) == 4
    assert (good["parameterization"] == "sp").all() and (good["safeguard"] == "none").all()
    assert good["eta_lambda_final"].to_numpy() == pytest.approx(1.8, abs=0.05)
    assert good["lambda_min_limit"].isna().all()


def test_the_lr_phase_config_expands():
    """config/lr_phase.yaml (outside the default catalog) stays valid: 4 jobs (one per width),
    μP and SP at 3 γ0 × 7 η/η_crit, every cell critical and unguarded."""
    from pathlib import Path

    import yaml

    from lazyphase.pipeline.grid import expand_config

    cfg = yaml.safe_load((Path(__file__).parents[1] / "config" / "lr_phase.yaml").read_text())
    cells = expand_config(cfg)
    assert cells.groupby("batch").ngroups == 4 and len(cells) == 4 * 2 * 3 * 7
    params = list(cells["params"])
    assert {p["lr_policy"] for p in params} == {"critical"}
    assert {p["safeguard"] for p in params} == {"none"}
