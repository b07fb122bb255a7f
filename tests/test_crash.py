"""Crash safety: the workflow killed (SIGKILL, whole process group) at random moments ten times,
then rerun, completes with results identical to an uninterrupted run; no partial file is read."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import dataset_bytes

from lazyphase.store.runs import load_run

ROOT = Path(__file__).resolve().parents[1]


def _cmd(cfg: Path, work: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
        "--configfile", str(cfg), "--replace-workflow-config", "--directory", str(work), "--cores", "2", *extra,
        "results/theta_lazy/runs.parquet",
    ]  # fmt: skip


def test_ten_sigkills_then_rerun_gives_identical_results(tmp_path):
    tiny = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    tiny["experiments"] = {"theta_lazy": tiny["experiments"]["theta_lazy"]}
    tiny["experiments"]["theta_lazy"]["fixed"]["max_steps"] = 2000  # long enough to be hit
    cfg = tmp_path / "crash.yaml"
    cfg.write_text(yaml.safe_dump(tiny))
    ref, work = tmp_path / "ref", tmp_path / "work"
    r = subprocess.run(_cmd(cfg, ref), cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]

    rng = random.Random(1234)
    kills = 0
    for _ in range(10):
        subprocess.run(_cmd(cfg, work, "--unlock"), cwd=ROOT, capture_output=True)
        proc = subprocess.Popen(
            _cmd(cfg, work), cwd=ROOT, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(1.0, 9.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 5  # most kills hit a running workflow
    subprocess.run(_cmd(cfg, work, "--unlock"), cwd=ROOT, capture_output=True)
    r = subprocess.run(_cmd(cfg, work), cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]

    files = sorted((ref / "results" / "theta_lazy" / "runs").rglob("*.h5"))
    assert len(files) == 8
    for f in files:
        twin = work / f.relative_to(ref)
        load_run(str(twin))  # complete, right schema and shapes
        assert dataset_bytes(twin) == dataset_bytes(f), f.name
    assert not list((work / "results").rglob("*.tmp-*"))
