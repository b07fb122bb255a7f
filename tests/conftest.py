"""Shared helpers for the tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from lazyphase.cells import validate_cell


@pytest.fixture
def cell():
    """A factory of validated cells: ``cell(m=64, depth=2, ...)``."""

    def make(**kw):
        kw.setdefault("m", 16)
        return validate_cell(kw)

    return make


def dataset_bytes(path) -> dict[str, bytes]:
    """Every dataset of an HDF5 file as raw bytes (for bit-for-bit comparisons)."""
    import h5py

    out: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()].tobytes()) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return out


def pytest_configure(config):
    """One torch thread: the tests are small, and two pytest-spawned workloads sharing two cores
    with OpenMP spin-waiting would make them slow, not faster."""
    import torch

    torch.set_num_threads(1)


ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
# the tiny experiments only (a bare --configfile deep-merges over config.yaml's experiments)
TINY_CFG = ("--configfile", str(TINY), "--replace-workflow-config")
TINY_ARGS = ("--cores", "2", *TINY_CFG)


def smk(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``snakemake`` on the repository's Snakefile."""
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny workflow (tests/configs/tiny.yaml) run once for the session (about a minute):
    tests/test_workflow.py and tests/test_report.py share it."""
    work = tmp_path_factory.mktemp("wf")
    r = smk(*TINY_ARGS, "--directory", str(work))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return work


@pytest.fixture(scope="session")
def tiny_report(tiny_run):
    """``snakemake --report`` of the tiny run: the path of report.html (built once)."""
    report = tiny_run / "report.html"
    start = time.perf_counter()
    r = smk(*TINY_CFG, "--directory", str(tiny_run), "--report", str(report))
    assert r.returncode == 0, r.stderr[-2000:]
    print(f"report built in {time.perf_counter() - start:.1f} s")
    return report
