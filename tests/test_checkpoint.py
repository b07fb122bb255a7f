"""Checkpoint and resume (docs/checkpoints.md): a run stopped at any step and resumed writes run
files whose every dataset equals an uninterrupted run's bit for bit; stale checkpoints are
refused; SIGTERM writes a checkpoint and exits 143; the Snakemake job resumes after a kill."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from lazyphase.pipeline import jobs
from lazyphase.pipeline.jobs import TrainingInterrupted, stop_signals, train_cells
from lazyphase.store.provenance import RUNTIME_KEYS

ROOT = Path(__file__).resolve().parents[1]


def contents(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every dataset of a run file and every root attribute but ``seconds`` (as text)."""
    data: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda n, o: data.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None
        )
        # the seal covers seconds; the runtime provenance is the writing process's environment
        skip = ("seconds", "attrs_sha256", *RUNTIME_KEYS)
        attrs = {k: repr(v) for k, v in f.attrs.items() if k not in skip}
    return data, attrs


def assert_same_files(a_paths, b_paths) -> None:
    for a, b in zip(a_paths, b_paths):
        da, aa = contents(a)
        db, ab = contents(b)
        assert da.keys() == db.keys()
        for key in da:
            assert da[key].dtype == db[key].dtype, key
            assert np.array_equal(da[key], db[key], equal_nan=da[key].dtype.kind == "f"), key
            assert da[key].tobytes() == db[key].tobytes(), key  # bit for bit (NaN payloads too)
        assert aa == ab


SMALL = dict(n=16, n_test=16, d=4, n_gram_snapshots=2, n_snapshots=20)
CASES = {
    # safeguard halvings until step 6; replicas diverge at 4 and 39 (after halvings), one
    # converges at 58
    "safeguard": (
        [
            dict(m=64, s=-0.5, activation="relu", scheme="uniform:0.75", seeds=[0, 1],
                 max_halvings=3, max_steps=2000, **SMALL),
            dict(m=64, s=0.5, seeds=[1], lr_policy="fixed", lr=1e6, max_halvings=3,
                 max_steps=2000, **SMALL),
        ],
        [3, 5, 45],
    ),
    # population SGD with early stopping on the test loss (stops at 103, 111, 167) and weight
    # snapshots
    "sgd_patience": (
        [dict(m=32, s=0.0, seeds=[0, 1, 2], batch_size=8, patience=20, delta=1e-4,
              weight_snapshots=True, max_steps=2000, **SMALL)],
        [1, 60, 105],
    ),
    # population SGD to max_steps: the tail average spans the checkpoint
    "sgd_tail": (
        [dict(m=16, s=0.25, seeds=[3, 4], batch_size=4, max_steps=300, tail_steps=100,
              tol_rel=1e-12, **SMALL)],
        [250],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_resumed_run_files_equal_uninterrupted_ones(case, tmp_path):
    cells, stops = CASES[case]
    outs = [str(tmp_path / f"full{i}.h5") for i in range(len(cells))]
    train_cells(cells, outs)
    for k in stops:
        resumed = [str(tmp_path / f"k{k}_{i}.h5") for i in range(len(cells))]
        ckpt = tmp_path / f"k{k}.pt"
        with pytest.raises(TrainingInterrupted) as info:
            train_cells(cells, resumed, checkpoint=str(ckpt), stop_at=k)
        assert info.value.step == k and ckpt.exists()
        Path(f"{ckpt}.tmp-999").write_bytes(b"torn")  # a write killed midway
        assert not any(os.path.exists(p) for p in resumed)
        train_cells(cells, resumed, checkpoint=str(ckpt))
        assert not list(tmp_path.glob(f"k{k}.pt*"))  # removed once the run files are complete
        assert_same_files(outs, resumed)


def test_stale_checkpoint_is_refused_and_training_starts_over(tmp_path, caplog, monkeypatch):
    cells = [dict(m=16, s=0.5, seeds=[0], max_steps=200, tol_rel=1e-12, **SMALL)]
    ckpt = str(tmp_path / "c.pt")
    with pytest.raises(TrainingInterrupted):
        train_cells(cells, [str(tmp_path / "x.h5")], checkpoint=ckpt, stop_at=50)
    # other cell parameters (a seed)
    other = [{**cells[0], "seeds": [1]}]
    train_cells(other, [str(tmp_path / "ref.h5")])
    with caplog.at_level(logging.INFO):
        train_cells(other, [str(tmp_path / "y.h5")], checkpoint=ckpt)
    assert "refused: it was written for other cell parameters or another code" in caplog.text
    assert "resuming" not in caplog.text and "started over" in caplog.text
    assert_same_files([tmp_path / "ref.h5"], [tmp_path / "y.h5"])
    # another code fingerprint
    with pytest.raises(TrainingInterrupted):
        train_cells(cells, [str(tmp_path / "x.h5")], checkpoint=ckpt, stop_at=50)
    monkeypatch.setattr(jobs, "code_fingerprint", lambda: "0.0-edited")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train_cells(cells, [str(tmp_path / "z.h5")], checkpoint=ckpt)
    assert "refused" in caplog.text and "resuming" not in caplog.text
    # a torn file
    Path(ckpt).write_bytes(b"not a checkpoint")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train_cells(cells, [str(tmp_path / "w.h5")], checkpoint=ckpt)
    assert "unreadable" in caplog.text


def test_stop_signals_turn_sigterm_and_sigint_into_a_flag():
    before = signal.getsignal(signal.SIGTERM)
    with stop_signals() as pending:
        assert pending() == 0
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert pending() == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert pending() == signal.SIGINT
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_deadline_raises_the_flag_with_sigalrm_and_is_cleared_on_exit():
    with stop_signals(deadline=0.05) as pending:
        assert pending() == 0
        time.sleep(0.2)
        assert pending() == signal.SIGALRM
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.parametrize(
    "text, seconds",
    [("0:45", 45), ("2:00", 120), ("1:02:03", 3723), ("1-00:00:10\n", 86410),
     ("UNLIMITED", None), ("NOT_SET", None), ("", None)],
)  # fmt: skip
def test_slurm_seconds_reads_squeue_percent_L(text, seconds):
    assert jobs.slurm_seconds(text) == seconds


def test_slurm_deadline_keeps_a_margin_and_is_none_outside_slurm(monkeypatch):
    """squeue's time left and limit: the stop comes a margin before the limit; the job may
    requeue itself only if the window left is at least what its start-up took."""
    assert jobs.slurm_deadline({}) is None
    for left, limit, margin, requeue in (
        (60, "1:00", 15, True),  # no start-up time
        (50, "1:00", 15, True),  # 35 s to train, 10 s taken
        (40, "1:00", 15, True),  # 25 s to train, 20 s taken
        (30, "1:00", 15, False),  # 15 s to train, 30 s taken: no requeue
        (3600, "1:01:00", 120, True),
        (1000, "20:00", 50, True),
        (45, "UNLIMITED", 15, False),
    ):
        out = subprocess.CompletedProcess([], 0, stdout=f"{left // 60}:{left % 60:02d} {limit}\n")
        monkeypatch.setattr(jobs.subprocess, "run", lambda *a, out=out, **k: out)
        got = jobs.slurm_deadline({"SLURM_JOB_ID": "7"})
        assert got.seconds == pytest.approx(left - margin) and got.requeue == requeue, left


def test_slurm_requeue_only_when_slurm_allows_it(monkeypatch):
    """scontrol's answer decides: Requeue=1 requeues the job (the same job id), Requeue=0
    (--no-requeue) or a refused requeue leaves the job to exit for a Snakemake retry."""
    calls = []

    def scontrol(show: str, rc: int = 0):
        def run(cmd, **kw):
            calls.append(cmd)
            out = show if cmd[1] == "show" else ""
            return subprocess.CompletedProcess(cmd, rc if cmd[1] == "requeue" else 0, out, "no")

        return run

    assert not jobs.slurm_requeue({})
    monkeypatch.setattr(jobs.subprocess, "run", scontrol("JobId=7 Requeue=1 Restarts=0"))
    assert jobs.slurm_requeue({"SLURM_JOB_ID": "7"})
    assert calls[-1] == ["scontrol", "requeue", "7"]
    monkeypatch.setattr(jobs.subprocess, "run", scontrol("JobId=7 Requeue=0 Restarts=0"))
    calls.clear()
    assert not jobs.slurm_requeue({"SLURM_JOB_ID": "7"})
    assert [c[1] for c in calls] == ["show"]
    monkeypatch.setattr(jobs.subprocess, "run", scontrol("Requeue=1", rc=1))
    assert not jobs.slurm_requeue({"SLURM_JOB_ID": "7"})


def test_a_job_requeues_itself_at_its_deadline_after_progress(monkeypatch, tmp_path):
    """SIGALRM (the job's own deadline) with steps trained requeues; SIGTERM (scancel,
    preemption, the limit itself) or no progress does not; the interruption propagates."""
    requeued = []
    monkeypatch.setattr(jobs, "slurm_requeue", lambda: requeued.append(1) or True)
    ckpt = jobs.Checkpointing(str(tmp_path / "c.pt"), key="k")
    for signum, trained, expect in ((14, 5, 1), (15, 5, 0), (14, 0, 0)):
        requeued.clear()
        ckpt.steps_trained = trained
        with pytest.raises(TrainingInterrupted), jobs._requeue_at_deadline([ckpt], True):
            raise TrainingInterrupted(signum, 10, ckpt.path)
        assert len(requeued) == expect, (signum, trained)
    with pytest.raises(TrainingInterrupted), jobs._requeue_at_deadline([ckpt], False):
        ckpt.steps_trained = 5
        raise TrainingInterrupted(14, 10, ckpt.path)
    assert not requeued  # the start-up took most of the limit: no requeue


def _train_cell_cli(cell_yaml: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "lazyphase", "train-cell", "--config", str(cell_yaml),
           "--out", str(out), "--log-every", "0.05", *extra]  # fmt: skip
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)


def run_sigterm_at(tmp_path: Path, cell: dict, fraction: float) -> dict[str, float]:
    """The ``lazyphase train-cell`` command run uninterrupted, then SIGTERMed once its progress
    line passes ``fraction`` of ``max_steps``, then rerun. Returns the steps and times."""
    cell_yaml = tmp_path / "cell.yaml"
    cell_yaml.write_text(yaml.safe_dump(cell))
    total = cell["max_steps"]
    t0 = time.perf_counter()
    full = _train_cell_cli(cell_yaml, tmp_path / "full.h5")
    full_log = full.communicate()[1]
    t_full = time.perf_counter() - t0
    assert full.returncode == 0, full_log[-2000:]

    t0 = time.perf_counter()
    proc = _train_cell_cli(cell_yaml, tmp_path / "resumed.h5")
    first_log, signalled_at = [], None
    assert proc.stderr is not None
    for line in proc.stderr:
        first_log.append(line)
        m = re.search(r"step (\d+)/(\d+)", line)
        if signalled_at is None and m and int(m.group(1)) >= fraction * total:
            proc.send_signal(signal.SIGTERM)
            signalled_at = int(m.group(1))
    proc.wait()
    t_first = time.perf_counter() - t0
    text = "".join(first_log)
    assert signalled_at is not None, text[-2000:]
    assert proc.returncode == 128 + signal.SIGTERM, text[-2000:]
    m = re.search(r"checkpoint at step (\d+) written in ([\d.]+)s", text)
    saved, t_write = int(m.group(1)), float(m.group(2))
    ckpt_bytes = (tmp_path / "resumed.h5.ckpt.pt").stat().st_size
    assert saved >= signalled_at
    assert (tmp_path / "resumed.h5.ckpt.pt").exists() and not (tmp_path / "resumed.h5").exists()

    t0 = time.perf_counter()
    again = _train_cell_cli(cell_yaml, tmp_path / "resumed.h5")
    again_log = again.communicate()[1]
    t_again = time.perf_counter() - t0
    assert again.returncode == 0, again_log[-2000:]
    assert f"resuming from checkpoint at step {saved}" in again_log
    m = re.search(r"steps trained by this job: (\d+) in ([\d.]+)s", again_log)
    trained, t_rerun_train = int(m.group(1)), float(m.group(2))
    t_full_train = float(re.search(r"steps trained by this job: \d+ in ([\d.]+)s", full_log)[1])
    assert trained == total - saved
    assert re.search(
        rf"training segments: 0->{saved} \([\d.]+s, signal 15\), {saved}->{total} \(", again_log
    ), again_log[-2000:]
    assert not (tmp_path / "resumed.h5.ckpt.pt").exists()
    assert_same_files([tmp_path / "full.h5"], [tmp_path / "resumed.h5"])
    return dict(
        total_steps=total, signalled_at=signalled_at, checkpoint_step=saved,
        rerun_steps=trained, t_full=t_full, t_first=t_first, t_rerun=t_again,
        t_full_train=t_full_train, t_rerun_train=t_rerun_train, t_write=t_write,
        ckpt_bytes=ckpt_bytes,
    )  # fmt: skip


def test_sigterm_at_70_percent_then_rerun_trains_at_most_half_the_steps(tmp_path):
    cell = dict(m=32, d=4, n=16, n_test=16, seeds=[0, 1, 2, 3], max_steps=6000, tol_rel=1e-12,
                n_snapshots=30, n_gram_snapshots=2)  # fmt: skip
    r = run_sigterm_at(tmp_path, cell, 0.7)
    print(r)
    assert r["checkpoint_step"] >= 0.7 * r["total_steps"]
    assert r["rerun_steps"] <= 0.5 * r["total_steps"]


@pytest.mark.slow
def test_snakemake_job_killed_by_sigterm_resumes_on_rerun(tmp_path):
    """The tiny workflow's training rule: SIGTERM to the running train_cell job, which writes a
    checkpoint and fails; ``snakemake --rerun-incomplete`` resumes it; the run files equal an
    undisturbed run's."""
    from lazyphase.pipeline.grid import expand_config

    tiny = yaml.safe_load((ROOT / "tests" / "configs" / "tiny.yaml").read_text())
    exp = tiny["experiments"]["theta_lazy"]
    exp["grid"] = {**exp["grid"], "m": [32]}
    exp["fixed"] = {**exp["fixed"], "max_steps": 6000, "tol_rel": 1e-12}
    exp["checkpoint_every"] = 0.01  # minutes: a checkpoint line every 0.6 s to watch
    cfg = {"experiments": {"theta_lazy": exp}}
    (tmp_path / "ckpt.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    frame = expand_config(cfg)
    (batch,) = frame["batch"].unique()
    target = f"results/theta_lazy/runs/{batch}"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--cores", "1", "--configfile", str(tmp_path / "ckpt.yaml"),
           "--replace-workflow-config", "--directory", str(tmp_path), "--rerun-incomplete",
           target]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    log_path = tmp_path / "logs" / "train_cell" / "theta_lazy" / f"{batch}.log"
    ckpt = tmp_path / "results" / "theta_lazy" / "checkpoints" / f"{batch}.pt"
    smk = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline, pid = time.time() + 120, None
    while time.time() < deadline and smk.poll() is None:
        text = log_path.read_text() if log_path.exists() else ""
        m = re.search(r"job pid (\d+)", text)
        if m and re.search(r"checkpoint at step \d+ written", text):
            pid = int(m.group(1))
            os.kill(pid, signal.SIGTERM)
            break
        time.sleep(0.1)
    out = smk.communicate(timeout=120)[0]
    text = log_path.read_text() if log_path.exists() else ""
    assert pid is not None, out[-3000:] + text[-3000:]
    assert smk.returncode != 0, out[-3000:]
    stopped = int(re.search(r"stopping at step (\d+)", text).group(1))
    assert ckpt.exists() and not (tmp_path / target).exists()

    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    text = log_path.read_text()
    assert f"resuming from checkpoint at step {stopped}" in text, text[-3000:]
    assert not ckpt.exists()

    cells, paths = list(frame["params"]), list(frame["path"])
    ref = [str(tmp_path / "ref" / os.path.basename(p)) for p in paths]
    train_cells(cells, ref, dataset=str(tmp_path / "results" / "theta_lazy" / "dataset.h5"))
    assert_same_files(ref, [tmp_path / p for p in paths])


def test_checkpoint_every_default_matches_the_schema():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    exp = schema["properties"]["experiments"]["additionalProperties"]["properties"]
    assert exp["checkpoint_every"]["default"] == jobs.CHECKPOINT_EVERY_MIN
