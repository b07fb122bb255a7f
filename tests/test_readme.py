"""The README's headline numbers and the figures in docs/ are the default run's.

``make docs-figures`` copies the default run's figures into ``docs/figures/`` and the tables the
headline reads into ``docs/results/<experiment>/``, and writes the README block between the
headline markers (``lazyphase.pipeline.headline``). These tests fail when the README block
differs from what the committed tables give, when a number in it is not in the tables, and when
``docs/figures/`` or the gallery ``docs/figures.md`` miss a figure the default configuration
draws (or hold one it does not).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lazyphase.pipeline import headline
from lazyphase.studies.catalog import FIGURES

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
REGENERATE = "regenerate with: make docs-figures (or RESULTS=<default run>/results)"


def _config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def _tables() -> dict[str, pd.DataFrame]:
    return headline.read_tables(headline.table_paths(_config(), DOCS / "results"))


def _block() -> str:
    return headline.current_block(README.read_text(encoding="utf-8"))


def test_readme_block_is_written_from_the_committed_tables():
    assert _block() == headline.headline_block(_tables()), REGENERATE


def test_readme_stays_a_front_page():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= 160, f"README.md has {n} lines; move detail to a page of docs/ (docs/index.md)"


# ---- the numbers, checked without the module's formatting code -------------------------------

NUM = r"−?\d+\.\d\d"
INTERVAL = re.compile(rf"({NUM}) \[({NUM}), ({NUM})\]")
NO_INTERVAL = re.compile(rf"({NUM}) \([^()]*no interval")


def _two(x: float) -> str:
    return f"{x:.2f}".replace("-0.00", "0.00").replace("-", "−")


def _triples(frame: pd.DataFrame, value: str, low: str, high: str) -> set[tuple[str, ...]]:
    rows = frame[[value, low, high]].dropna()
    return {(_two(a), _two(b), _two(c)) for a, b, c in rows.itertuples(index=False)}


def test_every_interval_in_the_block_is_a_row_of_the_tables():
    t = _tables()
    known = (
        _triples(t["threshold"], "s_star", "s_star_low", "s_star_high")
        | _triples(t["threshold"], "s_star_f", "s_star_f_low", "s_star_f_high")
        | _triples(t["function_exponents"], "slope", "ci_low", "ci_high")
        | _triples(t["phase_boundary"], "gamma_star", "gamma_star_low", "gamma_star_high")
        | _triples(t["deep_boundary"], "s_star", "s_star_low", "s_star_high")
    )
    found = INTERVAL.findall(_block())
    assert found, "the headline block states no interval"
    bad = [f for f in found if f not in known]
    assert not bad, f"numbers in the README block that no table row holds: {bad}; {REGENERATE}"
    single = set(NO_INTERVAL.findall(_block()))
    deep = {_two(x) for x in t["deep_boundary"]["s_star"].dropna()}
    assert single <= deep, f"estimates without interval not in deep_phase/boundary.csv: {single}"


def test_the_block_names_every_scheme_and_gamma_prime_of_the_tables():
    t, block = _tables(), _block()
    for scheme in t["threshold"]["scheme"].unique():
        assert f"| `{scheme}` |" in block, scheme
    for gp in t["phase_boundary"]["gamma_prime"]:
        assert f"`γ' = {headline.grid_value(gp)}`" in block, gp
    for act in t["deep_boundary"]["activation"].unique():
        assert f"B2 `s*`, {act} " in block, act


def test_the_largest_s_star_per_scheme_is_the_tables_maximum():
    thr = _tables()["threshold"]
    for scheme, grp in thr.groupby("scheme"):
        row = grp.loc[grp["s_star"].idxmax()]  # every group is lazy for s > 0 in the default run
        want = f"{_two(row.s_star)} [{_two(row.s_star_low)}, {_two(row.s_star_high)}]"
        line = next(x for x in _block().splitlines() if x.startswith(f"| `{scheme}` |"))
        assert line.split(" | ")[1].startswith(want), (scheme, want, line)


# ---- figures -----------------------------------------------------------------------------


def _default_figures() -> list[str]:
    return list(headline.catalog_figures(_config()))


def test_docs_figures_hold_every_figure_of_the_default_run():
    have = {p.stem for p in (DOCS / "figures").glob("*.png")}
    want = set(_default_figures())
    assert not want - have, f"missing in docs/figures/: {sorted(want - have)}; {REGENERATE}"
    assert not have - want, f"not drawn by config.yaml: {sorted(have - want)}; {REGENERATE}"


def test_the_gallery_shows_every_figure_in_catalog_order():
    text = (DOCS / "figures.md").read_text(encoding="utf-8")
    shown = re.findall(r"!\[([A-C]\d)\]\(figures/([a-z_]+)\.png\)", text)
    want = [(FIGURES[f].label, f) for f in _default_figures()]
    assert shown == want


def test_the_committed_tables_are_the_default_runs():
    for key, path in headline.table_paths(_config(), DOCS / "results").items():
        assert path.is_file(), f"{key}: {path} is missing; {REGENERATE}"


# ---- the module on made-up tables --------------------------------------------------------


def _threshold(**over) -> pd.DataFrame:
    rows = [
        dict(scheme="lecun", activation="relu", depth=1, layer_name="W1", s_star=math.nan,
             s_star_low=math.nan, s_star_high=math.nan, lazy_side_negative=True,
             note="no crossing in the grid's range: exponent < 0 at every s (lazy over the "
             "whole grid)", s_star_f=math.nan, s_star_f_low=math.nan, s_star_f_high=math.nan,
             lazy_side_negative_f=True, note_f="no crossing in the grid's range: x"),
        dict(scheme="lecun", activation="relu", depth=1, layer_name="a", s_star=-0.1234,
             s_star_low=-0.2, s_star_high=-0.05, lazy_side_negative=True, note="",
             s_star_f=math.nan, s_star_f_low=math.nan, s_star_f_high=math.nan,
             lazy_side_negative_f=True, note_f="no crossing in the grid's range: x"),
    ]  # fmt: skip
    frame = pd.DataFrame(rows)
    for k, v in over.items():
        frame.loc[0, k] = v
    return frame


def test_largest_crossing_reports_a_group_without_a_lazy_side():
    where = ["activation", "depth", "layer_name"]
    text = headline.largest_crossing(_threshold(), "s_star", "lazy_side_negative", "note", where)
    assert text == "−0.12 [−0.20, −0.05] (relu L=1 a)"
    no_lazy = _threshold(lazy_side_negative=False,
                         note="no crossing in the grid's range: exponent >= 0 at every s")  # fmt: skip
    text = headline.largest_crossing(no_lazy, "s_star", "lazy_side_negative", "note", where)
    assert text == "none in the grid: exponent >= 0 at every s (relu L=1 W1)"


def test_estimate_without_interval_gives_the_reason():
    note = "crossing in the last grid interval; no interval: 2 seeds (a seed bootstrap needs 3)"
    assert headline.estimate(0.3949, math.nan, math.nan, note, "a γ_h=0.25") == (
        "0.39 (a γ_h=0.25; no interval: 2 seeds)"
    )
    assert headline.num(-0.004) == "0.00" and headline.num(-0.5) == "−0.50"


def test_b1_rows_compare_with_both_lines():
    phase = pd.DataFrame([dict(
        gamma_prime=0.5, gamma_star=1.53, gamma_star_low=1.52, gamma_star_high=1.54,
        luo_line=1.5, scaling_line=2.0, nearer="luo", luo_in_ci=False, scaling_in_ci=False,
        note=math.nan)])  # fmt: skip
    deep = pd.DataFrame([dict(activation="relu", depth=2, layer_name="a", gamma_h=0.25,
                              s_star=0.07, s_star_low=math.nan, s_star_high=math.nan,
                              linear_above_0=True, note="no interval: 2 seeds")])  # fmt: skip
    rows = headline.boundary_rows(phase, deep)
    assert rows[0] == ["B1 `γ*`, `γ' = 0.5`", "1.53 [1.52, 1.54]",
                       "Luo `γ = 1.5` (outside), scaling `γ = 2` (outside); nearer: luo"]  # fmt: skip
    assert rows[1][1] == "0.07 (a γ_h=0.25; no interval: 2 seeds)"
    assert rows[1][2].endswith("in 1 of 1")


def test_replace_block_keeps_the_rest_and_needs_the_markers():
    text = f"# t\n{headline.BEGIN}\nold\n{headline.END}\ntail\n"
    new = headline.replace_block(text, "new\n")
    assert new == f"# t\n{headline.BEGIN}\nnew\n{headline.END}\ntail\n"
    assert headline.current_block(new) == "new\n"
    with pytest.raises(ValueError, match="headline:begin"):
        headline.replace_block("no markers", "x")


def test_copy_results_copies_the_drawn_figures_and_names_what_is_missing(tmp_path):
    config = {"experiments": {
        "t": {"figures": ["theta_lazy_threshold", "function_distance"]},
        "p": {"kind": "phase_diagram", "figures": ["phase_diagram"]},
        "d": {"kind": "deep_phase_diagram", "figures": ["deep_phase_diagram"]},
    }}  # fmt: skip
    res, docs = tmp_path / "results", tmp_path / "docs"
    for exp, fig in [("t", "theta_lazy_threshold"), ("t", "function_distance"),
                     ("p", "phase_diagram"), ("d", "deep_phase_diagram")]:  # fmt: skip
        (res / exp / "figures").mkdir(parents=True, exist_ok=True)
        (res / exp / "figures" / f"{fig}.png").write_bytes(b"png")
    for exp, table in [("t", "threshold.csv"), ("t", "function_exponents.csv"),
                       ("p", "boundary.csv")]:  # fmt: skip
        (res / exp / table).write_text("a\n1\n")
    with pytest.raises(FileNotFoundError, match=r"d/boundary\.csv"):
        headline.copy_results(config, res, docs)
    (res / "d" / "boundary.csv").write_text("a\n1\n")
    (docs / "figures").mkdir(parents=True)
    (docs / "figures" / "old.png").write_bytes(b"stale")
    written = headline.copy_results(config, res, docs)
    assert len(written) == 8
    assert sorted(p.name for p in (docs / "figures").iterdir()) == [
        "deep_phase_diagram.png", "function_distance.png", "phase_diagram.png",
        "theta_lazy_threshold.png"]  # fmt: skip
    assert (docs / "results" / "t" / "function_exponents.csv").is_file()


def test_catalog_figures_refuses_a_figure_drawn_twice():
    config = {"experiments": {"a": {"figures": ["gram_drift"]}, "b": {"figures": ["gram_drift"]}}}
    with pytest.raises(ValueError, match="'gram_drift' is drawn by experiments 'a' and 'b'"):
        headline.catalog_figures(config)
