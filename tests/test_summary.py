"""The end-of-run summary prints no line that says nothing (pipeline/summary.py)."""

from __future__ import annotations

import pandas as pd

from lazyphase.pipeline.summary import summarize_experiment


def _threshold(folder, n_s: int, note: str) -> None:
    row = {"scheme": "lecun", "activation": "relu", "depth": 1, "layer": 1, "layer_name": "W1",
           "s_star": float("nan"), "s_star_low": float("nan"), "s_star_high": float("nan"),
           "n_s": n_s, "note": note}  # fmt: skip
    folder.mkdir(parents=True)
    pd.DataFrame([row]).to_csv(folder / "threshold.csv", index=False)


def test_an_experiment_without_an_s_axis_prints_no_threshold_line(tmp_path):
    _threshold(tmp_path / "results" / "chizat_tau", 0, "fewer than 2 finite exponents")
    lines = summarize_experiment("chizat_tau", {}, tmp_path)
    assert lines == [f"chizat_tau (train): {tmp_path / 'results' / 'chizat_tau'}/"]


def test_an_experiment_with_an_s_axis_reports_its_thresholds(tmp_path):
    _threshold(tmp_path / "results" / "theta_lazy", 3, "exponent < 0 at every s")
    text = "\n".join(summarize_experiment("theta_lazy", {}, tmp_path))
    assert "thresholds (threshold.csv" in text
    assert "layer_name=W1: no s* (exponent < 0 at every s)" in text
