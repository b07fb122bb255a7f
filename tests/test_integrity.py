"""Checksums on everything the pipeline stores (docs/integrity.md): fletcher32 on every HDF5
dataset and the seal (sha256) of store/h5.py, parquet page checksums, the manifest, and
``lazyphase verify``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lazyphase.pipeline import cli
from lazyphase.pipeline.jobs import train_cells
from lazyphase.pipeline.steps import aggregate_experiment
from lazyphase.pipeline.verify import verify_results
from lazyphase.store.concentration import write_concentration
from lazyphase.store.files import (
    TableFileError,
    check_manifest,
    read_table,
    write_manifest,
    write_table,
)
from lazyphase.store.runs import RunFileError, load_run, read_datasets, write_datasets

ROOT = Path(__file__).resolve().parents[1]
CELL = dict(m=16, depth=1, s=0.25, seeds=[0, 1], max_steps=100, n=8, d=4, n_test=16,
            n_snapshots=10, n_gram_snapshots=2)  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results folder with one run file as the workflow lays it out."""
    work = tmp_path_factory.mktemp("wf")
    out = work / "results" / "exp" / "runs" / "m~16" / "s~0.25.h5"
    train_cells([CELL], [str(out)])
    return work


@pytest.fixture
def run_file(results):
    return results / "results" / "exp" / "runs" / "m~16" / "s~0.25.h5"


def flip(path: Path, dataset: str, byte: int, mask: int, dst: Path) -> Path:
    """Copy ``path`` to ``dst`` with one bit flipped in the first chunk of ``dataset``."""
    with h5py.File(path) as f:
        offset = f[dataset].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + byte] ^= mask
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(bytes(data))
    return dst


def _datasets(path):
    out = []
    with h5py.File(path) as f:
        f.visititems(lambda n, o: out.append(o) if isinstance(o, h5py.Dataset) else None)
        return [(d.name, d.shape, d.fletcher32, d.chunks) for d in out]


def test_every_dataset_of_every_hdf5_kind_carries_fletcher32(run_file, tmp_path):
    ds_file = tmp_path / "dataset.h5"
    write_datasets(str(ds_file), [load_run(str(run_file)).cell])
    conc = tmp_path / "concentration" / "a.h5"
    table = pd.DataFrame(
        dict(activation=["tanh"], depth=[1], scheme=["lecun"], m=[16], seed=[0], layer=[1],
             layer_name=["W1"], rel_error=[0.1], lambda_min_G=[1.0], lambda_min_K=[1.0],
             lambda_S=[1.0], ok=[True])
    )  # fmt: skip
    write_concentration(conc, table, {"K": np.eye(3)[None], "lambda_S": 1.0, "x": np.ones((3, 2))})
    for path in (run_file, ds_file, conc):
        rows = _datasets(path)
        assert rows
        for name, shape, f32, chunks in rows:
            assert shape == () or (f32 and chunks), (path.name, name)
        with h5py.File(path) as f:
            assert f.attrs["complete"] and len(f.attrs["attrs_sha256"]) == 64
    names = [r[0] for r in _datasets(run_file)]
    assert "/events" in names and "/trajectory/rd" in names
    read_datasets(str(ds_file))  # verified read


def test_the_issue_bit_flip_is_refused_naming_file_and_dataset(run_file, tmp_path):
    """0.0 became 2.0 at t = 0 in trajectory/rd: one bit (the exponent's top bit)."""
    assert load_run(str(run_file))["trajectory/rd"][0, 0, 0] == 0.0
    bad = flip(run_file, "trajectory/rd", 7, 0x40, tmp_path / "bad.h5")
    with h5py.File(bad) as f:
        with pytest.raises(OSError):
            f["trajectory/rd"][()]  # HDF5 itself refuses the chunk
    with pytest.raises(RunFileError, match=r"bad\.h5: dataset trajectory/rd fails its fletcher32"):
        load_run(str(bad))
    with pytest.raises(RunFileError, match="trajectory/rd"):
        load_run(str(bad), gram=False)
    # the CLI: one line, exit 2, no traceback
    r = subprocess.run([sys.executable, "-m", "lazyphase", "inspect", str(bad)],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "bad.h5" in r.stderr and "trajectory/rd" in r.stderr


def test_aggregation_refuses_a_corrupt_input_before_writing(run_file, tmp_path):
    bad = flip(run_file, "trajectory/rd", 7, 0x40, tmp_path / "bad.h5")
    outs = {k: str(tmp_path / f"{k}.{ext}") for k, ext in
            (("runs", "parquet"), ("traj", "parquet"), ("exponents", "csv"), ("threshold", "csv"))}  # fmt: skip
    with pytest.raises(RunFileError) as err:
        aggregate_experiment([str(run_file), str(bad)], "exp", outs, n_boot=10)
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and "bad.h5" in lines[1] and "trajectory/rd" in lines[1]
    assert not any(Path(p).exists() for p in outs.values())
    aggregate_experiment([str(run_file)], "exp", outs, n_boot=10)  # the good one alone: fine
    assert read_table(outs["traj"])["rd_W1"].iloc[0] == 0.0


def test_changed_attribute_or_rewritten_dataset_breaks_the_seal(run_file, tmp_path):
    for name, edit, expect in (
        ("attr.h5", lambda f: f.attrs.__setitem__("m", 32), "attrs_sha256 mismatch"),
        ("nan.h5", lambda f: f["trajectory/train_loss"].__setitem__((0, 0), np.nan),
         r"dataset trajectory/train_loss: content differs.*NaN/inf"),
        ("gone.h5", lambda f: f.__delitem__("replicas/lr0"), "attrs_sha256 mismatch"),
    ):  # fmt: skip
        path = tmp_path / name
        path.write_bytes(run_file.read_bytes())
        with h5py.File(path, "a") as f:
            edit(f)
        with pytest.raises(RunFileError, match=expect):
            load_run(str(path))


def test_parquet_page_checksums_are_written_and_verified(tmp_path):
    path = tmp_path / "t.parquet"
    frame = pd.DataFrame({"x": np.arange(2000, dtype=np.float64), "y": np.ones(2000)})
    write_table(frame, path)
    pd.testing.assert_frame_equal(read_table(path), frame)
    meta = pq.ParquetFile(path).metadata.row_group(0).column(0)
    start = meta.dictionary_page_offset if meta.has_dictionary_page else meta.data_page_offset
    # flip one bit in the middle of column x's pages
    data = bytearray(path.read_bytes())
    data[start + meta.total_compressed_size // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(TableFileError, match=r"t\.parquet: unreadable or corrupted table"):
        read_table(path)


def test_manifest_lists_sha256_and_catches_a_change(tmp_path):
    csv = tmp_path / "exp" / "a.csv"
    write_table(pd.DataFrame({"a": [1.0, 2.0]}), csv)
    (tmp_path / "exp" / "figures").mkdir()
    png = tmp_path / "exp" / "figures" / "f.png"
    png.write_bytes(b"\x89PNG fake")
    man = tmp_path / "exp" / "manifest.json"
    doc = write_manifest(man, [csv, png], code="x")
    assert set(doc["files"]) == {"a.csv", "figures/f.png"}
    assert json.loads(man.read_text())["files"]["a.csv"]["sha256"] == doc["files"]["a.csv"]["sha256"]
    assert check_manifest(man) == []
    csv.write_text("a\n1.0\n3.0\n")
    png.unlink()
    problems = dict(check_manifest(man))
    assert "sha256 differs" in problems[str(csv)] and "missing" in problems[str(png)]


def test_verify_reports_each_problem_with_its_rebuild_command(results, tmp_path, capsys):
    import shutil

    work = tmp_path / "w"
    shutil.copytree(results, work)
    assert verify_results(work / "results") == []
    assert cli.main(["verify", str(work / "results")]) == 0
    victim = work / "results" / "exp" / "runs" / "m~16" / "s~0.25.h5"
    flip(victim, "trajectory/rd", 7, 0x40, victim)
    (work / "results" / "exp" / "runs.parquet").write_bytes(b"PAR1 not really")
    capsys.readouterr()
    assert cli.main(["verify", str(work / "results")]) == 2
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].startswith("results/exp/runs.parquet: unreadable or corrupted table")
    assert out[0].endswith("rebuild: snakemake --cores 2 -R results/exp/runs.parquet")
    assert out[1].startswith("results/exp/runs/m~16/s~0.25.h5: dataset trajectory/rd fails")
    assert out[1].endswith("-R results/exp/runs/m~16")


def test_verify_checks_completeness_and_provenance_against_the_config(results, tmp_path, capsys):
    import shutil

    import yaml

    work = tmp_path / "w"
    shutil.copytree(results, work)
    fixed = {k: v for k, v in CELL.items() if k not in ("m", "s", "seeds")}
    cfg = {"experiments": {"exp": {
        "grid": {"m": [16, 32], "s": [0.25]}, "seeds": [0, 1], "fixed": fixed, "figures": ["loss_decay"],
        "batch_over": ["s"]}}}  # fmt: skip
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert cli.main(["verify", str(work / "results")]) == 2
    out = capsys.readouterr().out.splitlines()
    missing = [
        "results/exp/dataset.h5", "results/exp/exponents.csv", "results/exp/figures/loss_decay.pdf",
        "results/exp/figures/loss_decay.png", "results/exp/manifest.json",
        "results/exp/runs.parquet", "results/exp/runs/m~32/s~0.25.h5",
        "results/exp/threshold.csv", "results/exp/trajectory.parquet",
    ]  # fmt: skip
    assert out == [
        f"{p}: missing (the configuration needs it); rebuild: snakemake --cores 2 -R "
        + (p.rsplit("/", 1)[0] if "/runs/" in p else p)
        for p in missing
    ]
    # the run file of m = 16 claims another cell once the configuration changes max_steps
    cfg["experiments"]["exp"]["fixed"]["max_steps"] = 50
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert cli.main(["verify", str(work / "results")]) == 2
    out = capsys.readouterr().out
    assert "s~0.25.h5: written for another cell than the configuration gives it (keys ['max_steps']" in out


def test_verify_handles_an_absurd_grid_without_allocating(results, tmp_path, capsys):
    """validate-config's m: [100000000] with n: 100000: the job budget (issue 14) refuses the
    grid by memory, and verify says so in one line (exit 2) instead of allocating anything."""
    import yaml

    cfg = tmp_path / "huge.yaml"
    cfg.write_text(yaml.safe_dump({"experiments": {"big": {
        "grid": {"m": [100000000]}, "fixed": {"n": 100000}, "seeds": [0], "figures": ["gram_drift"]}}}))  # fmt: skip
    assert cli.main(["verify", str(results / "results"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "m=100000000" in err and "MB of host memory" in err
