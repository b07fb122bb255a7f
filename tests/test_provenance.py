"""Issue 19: provenance in every file, `lazyphase inspect` of every file kind, the end-of-run
summary and the tables' data dictionary (docs/tables.md)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from lazyphase.pipeline.cli import main
from lazyphase.pipeline.inspection import inspect_file
from lazyphase.pipeline.jobs import TrainingInterrupted, train_cells
from lazyphase.pipeline.summary import summarize
from lazyphase.store.dictionary import TABLE_DOCS, tables_markdown, undocumented
from lazyphase.store.files import read_table, write_table, write_tables
from lazyphase.store.provenance import CODE_KEY, GIT_KEY, code_fingerprint, provenance
from lazyphase.store.runs import load_run, write_datasets
from lazyphase.store.tables import collect

ROOT = Path(__file__).resolve().parents[1]
CELL = dict(m=8, depth=1, s=0.25, seeds=[0, 1], max_steps=40, activation="tanh")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A run file, a data set file, a concentration file, tables and a checkpoint."""
    from lazyphase.cells import validate_cell
    from lazyphase.pipeline.steps import compute_concentration

    d = tmp_path_factory.mktemp("prov")
    run = str(d / "runs" / "b" / "cell.h5")
    train_cells([CELL], [run])
    write_datasets(str(d / "dataset.h5"), [validate_cell(CELL)])
    conc_cells = [validate_cell(dict(m=m, depth=1, activation="relu", seeds=[0, 1], n=6, d=3))
                  for m in (16, 32)]  # fmt: skip
    compute_concentration(conc_cells, str(d / "concentration" / "c.h5"))
    runs, traj = collect([run], "exp")
    write_tables({str(d / "runs.parquet"): runs, str(d / "exponents.csv"): runs.head(3)})
    ckpt = str(d / "job.pt")
    with pytest.raises(TrainingInterrupted):  # stop_at: a checkpoint is written
        train_cells([CELL], [str(d / "other.h5")], checkpoint=ckpt, stop_at=10)
    return d, run, runs, traj


def test_provenance_value():
    p = provenance()
    assert p[CODE_KEY] == code_fingerprint()
    # this test runs from a git checkout: describe gives a commit (maybe -dirty)
    assert p[GIT_KEY] and " " not in p[GIT_KEY]


def test_every_file_carries_provenance(files):
    d, run, _, _ = files
    want = provenance()
    for h5 in (run, d / "dataset.h5", d / "concentration" / "c.h5"):
        with h5py.File(h5, "r") as f:
            assert {k: f.attrs[k] for k in want} == want, h5
    assert load_run(run).attrs[CODE_KEY] == want[CODE_KEY]
    import pyarrow.parquet as pq

    meta = pq.read_schema(d / "runs.parquet").metadata
    assert meta[CODE_KEY.encode()].decode() == want[CODE_KEY]
    csv = pd.read_csv(d / "exponents.csv")  # plain pandas: two trailing columns
    assert list(csv.columns[-2:]) == [CODE_KEY, GIT_KEY]
    assert (csv[CODE_KEY] == want[CODE_KEY]).all()
    back = read_table(d / "exponents.csv")  # the package's reader drops them into attrs
    assert CODE_KEY not in back.columns and back.attrs["provenance"] == want
    assert read_table(d / "runs.parquet").attrs["provenance"] == want
    import torch

    assert torch.load(d / "job.pt", weights_only=False)["provenance"] == want


def test_tables_without_provenance_read_as_unknown(tmp_path):
    old = pd.DataFrame({"a": [1, 2]})
    old.to_csv(tmp_path / "old.csv", index=False)
    old.to_parquet(tmp_path / "old.parquet")
    for name in ("old.csv", "old.parquet"):
        t = read_table(tmp_path / name)
        assert list(t.columns) == ["a"]
        assert t.attrs["provenance"] == {CODE_KEY: "unknown", GIT_KEY: "unknown"}
        r = inspect_file(tmp_path / name)
        assert r.ok and "code   unknown" in r.text


def test_rewriting_a_read_csv_keeps_one_pair_of_columns(tmp_path):
    write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    write_table(pd.read_csv(tmp_path / "t.csv"), tmp_path / "t.csv")
    assert list(pd.read_csv(tmp_path / "t.csv").columns) == ["a", CODE_KEY, GIT_KEY]


@pytest.mark.parametrize(
    ("name", "kind", "facts"),
    [
        ("runs/b/cell.h5", "run", ["run file", "replica 1 (seed 1)"]),
        ("dataset.h5", "dataset", ["data set file", "data-"]),
        ("concentration/c.h5", "concentration", ["A4 concentration file", "widths [16, 32]"]),
        ("runs.parquet", "table", ["table runs.parquet", "replicas by status"]),
        ("exponents.csv", "table", ["table exponents.csv", "manifest.json"]),
        ("job.pt", "checkpoint", ["training checkpoint", "step 10"]),
    ],
)
def test_inspect_identifies_every_kind(files, name, kind, facts):
    d = files[0]
    r = inspect_file(d / name)
    assert r.ok and r.kind == kind, r.text
    assert f"code   {code_fingerprint()}" in r.text
    for fact in facts:
        assert fact in r.text, (fact, r.text)
    assert "corrupt" not in r.text


@pytest.mark.parametrize("name", ["runs/b/cell.h5", "dataset.h5", "concentration/c.h5",
                                  "runs.parquet", "job.pt"])  # fmt: skip
def test_inspect_calls_a_truncated_file_corrupt(files, tmp_path, name, capsys):
    data = (files[0] / name).read_bytes()
    bad = tmp_path / Path(name).name
    bad.write_bytes(data[: len(data) // 2])
    r = inspect_file(bad)
    assert not r.ok and "corrupt" in r.text and str(bad) in r.text
    assert main(["inspect", str(bad)]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_inspect_cli_on_a_valid_dataset_file(files, capsys):
    assert main(["inspect", str(files[0] / "dataset.h5")]) == 0
    out = capsys.readouterr()
    assert "data set file" in out.out and "corrupt" not in out.out + out.err


def _results(root: Path) -> dict:
    """A results folder of three synthetic experiments (tables only)."""
    a = root / "results" / "theta_lazy"
    (a / "figures").mkdir(parents=True)
    (a / "figures" / "theta_lazy_rd.png").write_bytes(b"png")
    runs = pd.DataFrame({"file": ["f1", "f1", "f2", "f2"], "replica": [0, 1, 0, 0],
                         "layer": [1, 1, 1, 2], "status": ["converged", "diverged",
                                                           "max_steps", "max_steps"]})  # fmt: skip
    write_table(runs, a / "runs.parquet")
    thr = pd.DataFrame({"scheme": ["lecun", "xavier"], "layer_name": ["W1", "W1"],
                        "s_star": [0.41, np.nan], "s_star_low": [0.3, np.nan],
                        "s_star_high": [0.5, np.nan], "frac_boot_cross": [0.9, 0.0],
                        "note": ["", "no crossing in the grid's range"]})  # fmt: skip
    write_table(thr, a / "threshold.csv")
    b = root / "results" / "phase_diagram"
    b.mkdir(parents=True)
    write_table(pd.DataFrame({"gamma_prime": [0.0], "gamma_star": [1.02],
                              "gamma_star_low": [0.95], "gamma_star_high": [1.1],
                              "note": [np.nan]}), b / "boundary.csv")  # fmt: skip
    c = root / "results" / "deep_phase"
    c.mkdir(parents=True)
    write_table(pd.DataFrame({"activation": ["tanh"], "depth": [2], "layer_name": ["W2"],
                              "gamma_h": [0.5], "s_star": [np.nan], "s_star_low": [np.nan],
                              "s_star_high": [np.nan],
                              "note": ["no sign change"]}), c / "boundary.csv")  # fmt: skip
    return {"experiments": {"theta_lazy": {}, "phase_diagram": {"kind": "phase_diagram"},
                            "deep_phase": {"kind": "deep_phase_diagram"},
                            "not_run": {"kind": "train"}}}  # fmt: skip


def test_summary_content(tmp_path):
    cfg = _results(tmp_path)
    text = summarize(cfg, tmp_path)
    assert "report with all figures: snakemake --report report.html" in text
    assert f"theta_lazy (train): {tmp_path}/results/theta_lazy/" in text
    assert "figures:" in text and "theta_lazy_rd" in text
    # replicas: (f1,0), (f1,1), (f2,0): one diverged
    assert "replicas: 3, diverged 1" in text
    assert "scheme=lecun layer_name=W1: s* = 0.41 [0.3, 0.5]" in text
    assert "scheme=xavier layer_name=W1: no s* (no crossing in the grid's range)" in text
    assert "gamma_prime=0.0: gamma* = 1.02 [0.95, 1.1]" in text
    assert "activation=tanh depth=2 layer_name=W2 gamma_h=0.5: no s* (no sign change)" in text
    assert "not_run" not in text


def test_summary_cli_and_empty(tmp_path, capsys, monkeypatch):
    import yaml

    cfg = _results(tmp_path)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump({"experiments": {
        "phase_diagram": {"kind": "phase_diagram", "grid": {"m": [8, 16]}}}}))  # fmt: skip
    assert main(["summary", "--configfile", str(tmp_path / "cfg.yaml"),
                 "--directory", str(tmp_path)]) == 0  # fmt: skip
    assert "gamma* = 1.02" in capsys.readouterr().out
    assert "no results yet" in summarize(cfg, tmp_path / "elsewhere")


def test_tables_reference_is_in_sync():
    assert (ROOT / "docs" / "tables.md").read_text() == tables_markdown(), (
        "regenerate with: lazyphase tables-reference > docs/tables.md"
    )


def test_every_catalog_table_is_described():
    from lazyphase.studies.catalog import TABLES

    documented = {t.file for t in TABLE_DOCS}
    assert set(TABLES.values()) <= documented


def test_runs_and_trajectory_columns_are_described(files):
    _, _, runs, traj = files
    assert undocumented("runs.parquet", runs.columns) == []
    assert undocumented("trajectory.parquet", traj.columns) == []
    assert undocumented("runs.parquet", ["no_such_column"]) == ["no_such_column"]


def test_env_has_no_stray_files(files):
    d = files[0]
    assert not [p for p in os.listdir(d) if ".tmp-" in p]


def test_python_api_reports_progress(capsys):
    from lazyphase.cells import validate_cell
    from lazyphase.core.train import Progress, train_replicas

    seen: list[Progress] = []
    cells = [validate_cell(dict(m=8, s=s, seeds=[0, 1], max_steps=30)) for s in (0.0, 0.5)]
    train_replicas(cells, progress=seen.append)
    assert seen and seen[-1].active == 0 and seen[-1].replicas == 4 and seen[-1].max_steps == 30
    train_replicas(cells, progress=True)
    err = capsys.readouterr().err
    assert "lazyphase: step" in err and "0/4 replicas training" in err
    with pytest.raises(TypeError):
        train_replicas(cells, progress="yes")
