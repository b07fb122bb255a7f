"""HDF5 run files: layout, atomic write, validation errors naming the file; the CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from lazyphase.cells import validate_cell
from lazyphase.pipeline.jobs import train_cells
from lazyphase.store.runs import SCHEMA_VERSION, RunFileError, load_run


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "cell.h5")
    train_cells(
        [dict(m=16, depth=2, s=0.25, seeds=[0, 3], max_steps=300, activation="tanh")], [out]
    )
    return out


def test_layout_and_attributes(run_file):
    run = load_run(run_file)
    a = run.attrs
    assert a["complete"] is True and a["schema_version"] == SCHEMA_VERSION
    assert a["m"] == 16 and a["depth"] == 2 and a["kappa"] == pytest.approx(16**0.25)
    assert list(a["seeds"]) == [0, 3] and a["scheme"] == "lecun" and a["activation"] == "tanh"
    assert len(a["status"]) == 2 and set(a["status"]) <= {"converged", "max_steps"}
    n_snap = len(run["trajectory/step"])
    assert run["trajectory/rd"].shape == (2, n_snap, 3)
    assert run["trajectory/train_loss"].shape == (2, n_snap)
    assert run["gram/theta"].shape[:3] == (2, len(run["gram/step"]), 3)
    assert run["data/x_train"].shape == (2, 32, 8) and run["data/x_kernel"].shape == (2, 32, 8)
    assert run["weights/init/W1"].shape == (2, 16, 8) and run["weights/final/a"].shape == (2, 16)
    # RD recomputed from the stored weights equals the stored trajectory's last value
    for li, name in enumerate(["W1", "W2", "a"]):
        w0, w1 = run[f"weights/init/{name}"], run[f"weights/final/{name}"]
        rd = np.linalg.norm((w1 - w0).reshape(2, -1), axis=1) / np.linalg.norm(
            w0.reshape(2, -1), axis=1
        )
        np.testing.assert_allclose(run["trajectory/rd"][:, -1, li], rd, rtol=1e-9)
    assert run.cell["s"] == 0.25
    with h5py.File(run_file) as f:
        assert f["gram"].attrs["normalization"].shape == (3,)
    assert not [p for p in os.listdir(os.path.dirname(run_file)) if ".tmp-" in p]


def test_weights_cap_keeps_norms_only(tmp_path):
    out = str(tmp_path / "capped.h5")
    train_cells([dict(m=16, seeds=[0], max_steps=5, weights_cap=10)], [out])
    run = load_run(out)
    assert "weights/init/W1" not in run.arrays
    assert run["weights/norms_init"].shape == (1, 2)


def test_truncated_file_is_refused_with_its_name(run_file, tmp_path):
    bad = tmp_path / "truncated.h5"
    data = open(run_file, "rb").read()
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(RunFileError, match=r"truncated\.h5.*rerun"):
        load_run(str(bad))


def test_incomplete_or_foreign_schema_is_refused(run_file, tmp_path):
    for name, edit in (("partial.h5", lambda f: f.attrs.__delitem__("complete")),
                       ("old.h5", lambda f: f.attrs.__setitem__("schema_version", 99))):  # fmt: skip
        path = tmp_path / name
        path.write_bytes(open(run_file, "rb").read())
        with h5py.File(path, "a") as f:
            edit(f)
        with pytest.raises(RunFileError, match=name):
            load_run(str(path))


def test_linearized_group(run_file):
    run = load_run(run_file)
    n_snap = len(run["trajectory/step"])
    assert run["linearized/test_output"].shape == (2, n_snap, 128)
    assert run["linearized/train_loss"].shape == run["linearized/test_loss"].shape == (2, n_snap)
    assert run["replicas/test_output_final"].shape == run["replicas/test_output0"].shape == (2, 128)
    assert run.attrs["linearized_skipped"] == ""
    # at step 0 the linearized model is the network
    np.testing.assert_allclose(run["linearized/test_output"][:, 0], run["replicas/test_output0"])
    np.testing.assert_allclose(
        run["linearized/train_loss"][:, 0], run["trajectory/train_loss"][:, 0], rtol=1e-10
    )


def test_schema_1_file_is_refused_naming_file_and_version(run_file, tmp_path):
    path = tmp_path / "v1.h5"
    path.write_bytes(open(run_file, "rb").read())
    with h5py.File(path, "a") as f:
        f.attrs["schema_version"] = 1
    with pytest.raises(RunFileError, match=r"v1\.h5: schema_version 1 .*reads 3.*rerun"):
        load_run(str(path))


def test_cli_train_cell_and_inspect(tmp_path):
    cfg = tmp_path / "CELL.yaml"
    cfg.write_text("m: 8\nseeds: [1]\nmax_steps: 50\nactivation: erf\n")
    out = tmp_path / "run.h5"
    exe = [sys.executable, "-m", "lazyphase"]
    r = subprocess.run(
        [*exe, "train-cell", "--config", str(cfg), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*exe, "inspect", str(out)], capture_output=True, text=True)
    assert (
        r.returncode == 0
        and "activation         erf" in r.stdout
        and "replica 0 (seed 1)" in r.stdout
    )
    cfg.write_text("m: 8\nscheme: he\n")
    r = subprocess.run(
        [*exe, "train-cell", "--config", str(cfg), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "'scheme'" in r.stderr and "CELL.yaml" in r.stderr


def test_job_refuses_when_its_memory_estimate_exceeds_mem_mb(tmp_path):
    from lazyphase.pipeline.jobs import estimate_mem_mb

    cell = dict(m=64, depth=2, seeds=[0, 1], max_steps=5)
    need = estimate_mem_mb([validate_cell(cell)])
    with pytest.raises(MemoryError, match=rf"about {need} MB.*mem_mb=100"):
        train_cells([cell], [str(tmp_path / "x.h5")], mem_mb=100)
    assert not (tmp_path / "x.h5").exists()
    train_cells([cell], [str(tmp_path / "x.h5")], mem_mb=need)
    assert (tmp_path / "x.h5").exists()


def test_memory_estimate_grows_with_width_and_replicas():
    from lazyphase.pipeline.jobs import estimate_mem_mb

    base = estimate_mem_mb([validate_cell(dict(m=1024, depth=2, seeds=[0]))])
    wide = estimate_mem_mb([validate_cell(dict(m=2048, depth=2, seeds=[0]))])
    many = estimate_mem_mb([validate_cell(dict(m=1024, depth=2, seeds=list(range(8))))])
    # the m² hidden layer dominates: 4x the parameters, 8x the replicas (beyond the 600 MB base)
    assert wide - 600 == pytest.approx(4 * (base - 600), rel=0.1)
    assert many - 600 == pytest.approx(8 * (base - 600), rel=0.02)
