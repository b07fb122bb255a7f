"""Shared helpers for the tests."""

from __future__ import annotations

import fcntl
import os
import shutil
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


def dataset_contents(path) -> dict[str, object]:
    """Every dataset of an HDF5 file: raw bytes, or the values of variable-length strings (whose
    buffer holds pointers, which differ between two equal files)."""
    import h5py

    out: dict[str, object] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            x = obj[()]
            out[name] = x.tolist() if x.dtype.kind == "O" else x.tobytes()

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return out


def pytest_configure(config):
    """One torch thread: the tests are small, and two pytest-spawned workloads sharing two cores
    with OpenMP spin-waiting would make them slow, not faster."""
    import torch

    torch.set_num_threads(1)


ROOT = Path(__file__).resolve().parents[1]
SLURM_SCRIPT = ROOT / "scripts" / "slurm_local.sh"
# created by the script; root's default account is `root`, so a job under `ci` read SBATCH_ACCOUNT
SLURM_ACCOUNT = "ci"
# the status of submitted jobs is polled every 40 s by default; a local cluster answers at once
SLURM_FAST_POLL = ("--slurm-init-seconds-before-status-checks", "2")


def slurm_skip_reason() -> str | None:
    """Why the local SLURM cluster cannot be started here (None: it can)."""
    if os.environ.get("LAZYPHASE_SKIP_SLURM"):
        return "LAZYPHASE_SKIP_SLURM is set"
    if not sys.platform.startswith("linux") or not Path("/etc/debian_version").exists():
        return "scripts/slurm_local.sh needs a Debian-like Linux"
    if os.geteuid() != 0:
        return "scripts/slurm_local.sh must run as root (it installs and starts SLURM)"
    if not shutil.which("sbatch") and not shutil.which("apt-get"):
        return "no SLURM installed and no apt-get to install it"
    return None


@pytest.fixture(scope="session")
def slurm_cluster():
    """A one-node SLURM cluster with accounting, started by scripts/slurm_local.sh once for the
    session; stopped afterwards unless it was already running."""
    reason = slurm_skip_reason()
    if reason:
        pytest.skip(reason)
    was_up = subprocess.run([str(SLURM_SCRIPT), "status"], capture_output=True).returncode == 0
    t0 = time.monotonic()
    r = subprocess.run([str(SLURM_SCRIPT), "start"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"slurm_local.sh start: {time.monotonic() - t0:.1f}s")
    yield
    if not was_up:  # leave a cluster we did not start running; stop ours
        subprocess.run([str(SLURM_SCRIPT), "stop"], capture_output=True)


TINY = ROOT / "tests" / "configs" / "tiny.yaml"
CHIZAT_TINY = ROOT / "tests" / "configs" / "chizat_tiny.yaml"
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


def shared_run(tmp_path_factory, name: str, *args: str) -> Path:
    """``snakemake *args`` run once for the test session in a folder ``name``, shared by the
    pytest-xdist workers: the first to need it builds it under a file lock in the session's
    common temporary folder, the others wait for it. ``name/snakemake.out`` (the console) is
    written last and marks the run as done."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    work = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (work / "snakemake.out").exists():
            work.mkdir(exist_ok=True)
            r = smk(*args, "--directory", str(work))
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            (work / "snakemake.out").write_text(r.stdout + r.stderr)
    return work


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny workflow (tests/configs/tiny.yaml) run once for the session (about a minute):
    tests/test_workflow.py, tests/test_report.py and tests/test_golden.py share it. Only the
    tests of one file (one worker, ``--dist loadfile``) run snakemake in it; other files work
    on a copy (:func:`tiny_report`) or only read it."""
    return shared_run(tmp_path_factory, "tiny_run", *TINY_ARGS)


@pytest.fixture(scope="session")
def chizat_run(tmp_path_factory):
    """The tiny C1–C8 workflow (tests/configs/chizat_tiny.yaml) run once for the session: its
    ``results/`` folder (tests/test_chizat_workflow.py and tests/test_golden.py read it)."""
    cfg = ("--configfile", str(CHIZAT_TINY), "--replace-workflow-config")
    return shared_run(tmp_path_factory, "chizat_run", "--cores", "2", *cfg) / "results"


@pytest.fixture(scope="session")
def tiny_report(tiny_run, tmp_path_factory):
    """``snakemake --report`` of a copy of the tiny run: the path of report.html (built once)."""
    work = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(tiny_run, work, ignore=shutil.ignore_patterns("locks", "report.html"))
    report = work / "report.html"
    start = time.perf_counter()
    r = smk(*TINY_CFG, "--directory", str(work), "--report", str(report))
    assert r.returncode == 0, r.stderr[-2000:]
    print(f"report built in {time.perf_counter() - start:.1f} s")
    return report
