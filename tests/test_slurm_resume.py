"""Checkpoint and resume on a real (one-node) SLURM cluster started by scripts/slurm_local.sh: a
training job that needs several minutes, submitted with a 1-minute time limit, stops itself a
margin before each limit (or SLURM's SIGTERM stops it at the limit): it writes its checkpoint
and exits, Snakemake retries it, and it finishes through the retries; its run files equal an
uninterrupted run's bit for bit.

Needs root on Debian/Ubuntu (the script installs SLURM); skipped otherwise. Run with
``pytest -m slurm tests/test_slurm_resume.py`` (about 6 minutes)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import SLURM_ACCOUNT as ACCOUNT
from conftest import SLURM_FAST_POLL as FAST_POLL
from conftest import dataset_contents

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "profiles" / "slurm"
TRAIN_SECONDS = 100.0  # training time of the job, uninterrupted: several 1-minute limits
INTERVAL_MIN = 0.25  # checkpoint_every of the experiment (minutes)

pytestmark = pytest.mark.slurm


def smk(work: Path, cfg: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SBATCH_ACCOUNT": ACCOUNT, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
         "--directory", str(work), "--configfile", str(cfg), "--replace-workflow-config", *args],
        cwd=work, capture_output=True, text=True, env=env, timeout=1800,
    )  # fmt: skip


def experiment(max_steps: int) -> dict:
    """tests/configs/tiny.yaml's theta_lazy at one width: one train_cell job of 8 replicas. A
    tiny fixed step keeps every replica training to max_steps."""
    tiny = yaml.safe_load((ROOT / "tests" / "configs" / "tiny.yaml").read_text())
    exp = tiny["experiments"]["theta_lazy"]
    exp["grid"] = {**exp["grid"], "m": [128]}
    exp["fixed"] = {**exp["fixed"], "n": 32, "max_steps": max_steps, "lr_policy": "fixed",
                    "lr": 1e-4}  # fmt: skip
    exp["checkpoint_every"] = INTERVAL_MIN
    return {"experiments": {"theta_lazy": exp}}


def calibrated_steps(tmp: Path) -> int:
    """max_steps for about TRAIN_SECONDS of training with the profile's 2 threads."""
    import torch

    from lazyphase.pipeline.grid import expand_config
    from lazyphase.pipeline.jobs import train_cells

    probe = 10_000  # a few seconds: start-up costs amortized
    cells = list(expand_config(experiment(probe))["params"])
    threads = torch.get_num_threads()
    try:
        t0 = time.perf_counter()
        train_cells(cells, [str(tmp / f"probe{i}.h5") for i in range(len(cells))], threads=2)
        per_step = (time.perf_counter() - t0) / probe
    finally:
        torch.set_num_threads(threads)
    return int(TRAIN_SECONDS / per_step)


def test_a_job_over_its_time_limit_finishes_through_retries(slurm_cluster, tmp_path):
    from lazyphase.pipeline.grid import expand_config
    from lazyphase.pipeline.jobs import slurm_seconds

    max_steps = calibrated_steps(tmp_path)
    cfg = experiment(max_steps)
    cfg_path = tmp_path / "resume.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    frame = expand_config(cfg)
    (batch,) = frame["batch"].unique()
    target = f"results/theta_lazy/runs/{batch}"

    # the reference: the same job uninterrupted, locally, with the profile's 2 threads (the
    # target first: --set-threads and --set-resources take every following word as theirs)
    ref = tmp_path / "local"
    ref.mkdir()
    r = smk(ref, cfg_path, target, "--cores", "2", "--set-threads", "train_cell=2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ref_log = (ref / "logs" / "train_cell" / "theta_lazy" / f"{batch}.log").read_text()
    trained = float(re.search(r"steps trained by this job: \d+ in ([\d.]+)s", ref_log)[1])
    # the calibration is rough on a shared machine (seen: 0.6x to 2x); what matters is that
    # the training outlasts one job's window (about 36 s of a 1-minute limit)
    assert trained > 45, f"the job trains only {trained:.0f}s: it fits one 1-minute job"

    # through SLURM with a 1-minute limit, retried until done
    work = tmp_path / "slurm"
    work.mkdir()
    t0 = time.monotonic()
    r = smk(work, cfg_path, "--workflow-profile", str(PROFILE), *FAST_POLL, "--retries", "10",
            target, "--set-resources", "train_cell:runtime=1")  # fmt: skip
    wall = time.monotonic() - t0
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-5000:]
    ids = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    fields = "JobID,State,Elapsed,Timelimit,Start"
    rows = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", fields],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    jobs = sorted((dict(zip(fields.split(","), ln.split("|"))) for ln in rows if ln),
                  key=lambda j: j["Start"])  # fmt: skip
    states = [j["State"] for j in jobs]
    print(f"max_steps {max_steps}, uninterrupted training {trained:.0f}s, SLURM run {wall:.0f}s")
    print("sacct:", [(j["JobID"], j["State"], j["Elapsed"]) for j in jobs])
    # each job but the last stops itself before its limit (FAILED: exit non-zero after its
    # checkpoint) or is stopped by SLURM at the limit (TIMEOUT); the last completes
    assert [s for s in states if s not in ("FAILED", "TIMEOUT")] == ["COMPLETED"], jobs
    assert states[-1] == "COMPLETED" and len(states) >= 2, jobs  # 3-4 jobs when calibrated

    log = (work / "logs" / "train_cell" / "theta_lazy" / f"{batch}.log").read_text()
    assert "resuming from checkpoint at step" in log, log[-3000:]
    seg_text = re.search(r"training segments: (.*)", log)[1]
    print("segments:", seg_text)
    segs = [
        (int(a), int(b), float(sec), int(sig or 0))
        for a, b, sec, sig in re.findall(r"(\d+)->(\d+) \(([\d.]+)s(?:, signal (\d+))?\)", seg_text)
    ]
    # one segment per SLURM job, each starting where the previous one's checkpoint left off
    assert len(segs) == len(jobs), (segs, jobs)
    assert segs[0][0] == 0 and segs[-1][1] == max_steps
    assert all(a[1] == b[0] for a, b in itertools.pairwise(segs)), segs
    for seg, job in zip(segs[:-1], jobs[:-1]):
        # stopped before the limit (SIGALRM, 14) or by the limit's SIGTERM (15): the checkpoint
        # was written then, nothing lost; at worst (a SIGKILL) the job lost what it trained
        # since its last periodic checkpoint
        lost = slurm_seconds(job["Elapsed"]) - seg[2]  # sacct Elapsed
        assert seg[3] in (14, 15) or lost <= 60 * INTERVAL_MIN + 45, (seg, job)
    assert not (work / "results" / "theta_lazy" / "checkpoints" / f"{batch}.pt").exists()

    for path in frame["path"]:
        assert dataset_contents(work / path) == dataset_contents(ref / path), path
