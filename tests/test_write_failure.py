"""Writes that fail part-way (RLIMIT_FSIZE: the kernel refuses to grow a file past a size, as a
full disk would, EFBIG instead of ENOSPC) under a training job, an aggregation and a figure:
the job fails with a one-line message naming the file, nothing remains under its final name
(nor a temporary file), and the rerun gives results identical to an undisturbed run."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import dataset_bytes

from lazyphase.pipeline.jobs import train_cells
from lazyphase.pipeline.steps import aggregate_experiment, plot

CELL = dict(m=16, depth=1, s=0.25, seeds=[0, 1], max_steps=100, n=8, d=4, n_test=16,
            n_snapshots=10, n_gram_snapshots=2)  # fmt: skip
OUTS = (("runs", "parquet"), ("traj", "parquet"), ("exponents", "csv"), ("threshold", "csv"))


def _limited(limit: int):
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


def _run(code: str, limit: int | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, preexec_fn=_limited(limit) if limit else None,
    )  # fmt: skip


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An undisturbed run: two run files, their tables and one figure."""
    ref = tmp_path_factory.mktemp("ref")
    runs = [str(ref / f"c{i}.h5") for i in range(2)]
    train_cells([CELL, {**CELL, "s": 0.5}], runs)
    outs = {k: str(ref / f"{k}.{ext}") for k, ext in OUTS}
    aggregate_experiment(runs, "exp", outs, n_boot=10)
    plot("loss_decay", {"traj": outs["traj"]}, str(ref / "f.pdf"), str(ref / "f.png"))
    return ref


def _fails_cleanly(r: subprocess.CompletedProcess, final: list[Path], folder: Path) -> str:
    assert r.returncode != 0
    last = r.stderr.strip().splitlines()[-1]
    assert "write failed (File too large)" in last and "nothing was written" in last, last
    assert not any(p.exists() for p in final), [p for p in final if p.exists()]
    assert not _leftovers(folder)
    return last


def test_training_job_write_failure_then_rerun(reference, tmp_path):
    out = tmp_path / "runs" / "c0.h5"
    code = (
        "from lazyphase.pipeline.jobs import train_cells\n"
        f"train_cells([{CELL!r}, {{**{CELL!r}, 's': 0.5}}], [{str(out)!r}, {str(out)[:-4] + '1.h5'!r}])"
    )
    size = (reference / "c0.h5").stat().st_size
    for limit in (4096, size // 2, size - 1):  # early, middle, at the very end (the seal)
        r = _run(code, limit)
        last = _fails_cleanly(r, [out], tmp_path)
        assert str(out) in last
    r = _run(code, None)
    assert r.returncode == 0, r.stderr[-2000:]
    for i in range(2):
        assert dataset_bytes(tmp_path / "runs" / f"c{i}.h5") == dataset_bytes(reference / f"c{i}.h5")


def test_aggregation_write_failure_then_rerun(reference, tmp_path):
    outs = {k: str(tmp_path / f"{k}.{ext}") for k, ext in OUTS}
    runs = [str(reference / f"c{i}.h5") for i in range(2)]
    code = (
        "from lazyphase.pipeline.steps import aggregate_experiment\n"
        f"aggregate_experiment({runs!r}, 'exp', {outs!r}, n_boot=10)"
    )
    limit = Path(reference / "runs.parquet").stat().st_size // 2
    _fails_cleanly(_run(code, limit), [Path(p) for p in outs.values()], tmp_path)
    # a limit that lets the small tables through but not the trajectory: still nothing written
    limit = Path(reference / "traj.parquet").stat().st_size - 100
    _fails_cleanly(_run(code, limit), [Path(p) for p in outs.values()], tmp_path)
    r = _run(code, None)
    assert r.returncode == 0, r.stderr[-2000:]
    for k, ext in OUTS:
        assert (tmp_path / f"{k}.{ext}").read_bytes() == (reference / f"{k}.{ext}").read_bytes(), k


def test_figure_write_failure_then_rerun(reference, tmp_path):
    pdf, png = tmp_path / "f.pdf", tmp_path / "f.png"
    code = (
        "from lazyphase.pipeline.steps import plot\n"
        f"plot('loss_decay', {json.dumps({'traj': str(reference / 'traj.parquet')})}, "
        f"{str(pdf)!r}, {str(png)!r})"
    )
    for limit in (2000, (reference / "f.png").stat().st_size // 2):
        _fails_cleanly(_run(code, limit), [png] if limit > 2000 else [pdf, png], tmp_path)
    r = _run(code, None)
    assert r.returncode == 0, r.stderr[-2000:]
    assert png.read_bytes() == (reference / "f.png").read_bytes()
    assert pdf.stat().st_size > 1000
