"""The C figures' labels state what the tables hold (no hard-coded d, step cap or centering)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import lazyphase.studies.chizat.figures as cf

LR_C, LR_MAX, MULT = 0.1, 25.0, 0.5


def _runs(*, d=7, centering="none", policy="chizat", lr_max=LR_MAX) -> pd.DataFrame:
    """One row per replica (layer 1) of a small chizat grid whose ``lr0`` follows the step rule
    ``min(lr_max, lr_c/τ²)`` on ``F_A`` (step on R = η/A²)."""
    rng = np.random.default_rng(0)
    rows = []
    for tau, power, m, seed in itertools.product((0.01, 0.1, 1.0), (0.5, 1.0), (4, 8), (0, 1)):
        rule = LR_C / tau**2 if policy == "chizat" else LR_C / (tau * MULT) ** 2
        rows.append(
            dict(
                layer=1, m=m, d=d, n=30, tau=tau, chizat_multiplier=MULT, chizat_alpha_power=power,
                lr_policy=policy, lr_c=LR_C, lr=np.nan, step_on="F_alpha",
                lr0=min(lr_max, rule) / MULT**2, centering=centering, teacher_scale=1.0,
                final_step=500, status="converged", seed=seed, batch_size=16,
                test_loss_final=rng.uniform(0.1, 1), test_loss_best=rng.uniform(0.05, 0.1),
                rd_total_final=rng.uniform(0.01, 1), tail_train_loss=rng.uniform(0.1, 1),
            )
        )  # fmt: skip
    return pd.DataFrame(rows)


def _traj(eta_r: float = 0.02) -> pd.DataFrame:
    """A ``traj`` table as :func:`lazyphase.store.tables.run_tables` writes it (no ``d``, no
    ``centering``): ``t = step · eta_r``."""
    parts = []
    for tau, seed in itertools.product((0.1, 2.0), (0, 1)):
        step = np.array([0, 10, 20, 40])
        parts.append(
            pd.DataFrame(
                dict(
                    m=8, tau=tau, seed=seed, step=step, t=step * eta_r, step_on="F_alpha",
                    chizat_multiplier=MULT, lr_c=LR_C, patience=50.0,
                    rd_total=np.linspace(0, 0.1, 4), test_loss=np.linspace(1, 0.5, 4),
                )
            )
        )  # fmt: skip
    return pd.concat(parts, ignore_index=True)


@pytest.fixture
def texts():
    """Build a figure (``build_*``, nothing saved): returns its texts (suptitle, titles, axis
    labels, legend entries of the axes and of the figure) joined by newlines."""

    def draw(build, *tables, **kw) -> str:
        fig = build(*tables, **kw)
        out = [fig.get_suptitle()]
        for ax in fig.axes:
            out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
            if ax.get_legend():
                out += [t.get_text() for t in ax.get_legend().get_texts()]
        for leg in fig.legends:
            out += [t.get_text() for t in leg.get_texts()]
        return "\n".join(out)

    return draw


def test_c1_reads_d_and_the_step_cap_from_the_runs(texts):
    text = texts(cf.build_tau, _runs(d=7), policies=["chizat"])
    assert "d=7" in text and "100" not in text
    assert f"η = min(25, {LR_C:g}/τ²)" in text and "min(10" not in text
    assert "on $F_A" in text and "non-symmetrized init" in text


def test_c1_without_capped_runs_or_without_lr0(texts):
    assert "(cap not reached)" in texts(cf.build_tau, _runs(lr_max=1e9), policies=["chizat"])
    text = texts(cf.build_tau, _runs().drop(columns="lr0"), policies=["chizat"])
    assert "η_max" in text and "min(10" not in text


def test_c7_chizat_alpha_cap(texts):
    runs = _runs(policy="chizat_alpha")
    assert f"η = min(25, {LR_C:g}/(τA)²)" in texts(cf.build_tau, runs, policies=["chizat_alpha"])


def test_c2_states_the_table_d_and_centering(texts):
    text = texts(cf.build_width, _runs(d=7, centering="symmetric"))
    assert "d=7" in text and "100" not in text and "m0" not in text
    assert "symmetrized init (f₀ = 0)" in text and "non-symmetrized" not in text


def test_c5_takes_eta_from_the_trajectory_and_claims_no_d(texts):
    text = texts(cf.build_trajectories, _traj(eta_r=0.02))
    assert f"η={0.02 * MULT**2:.3g}" in text  # η on F_A = (t/step on R) · A²
    assert "d=" not in text and "symmetrized" not in text and "min(10" not in text
    assert "m=8" in text and "patience 50 steps" in text
