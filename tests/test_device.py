"""GPU device selection (lazyphase.device) without a GPU: slots, exclusive flock leases, SLURM,
timeouts, and release on exit and on SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lazyphase.pipeline.device import gpu_slots, job_device, lease, strict_float32

HOLDER = """
import sys, time
from lazyphase.pipeline.device import lease
env = {"LAZYPHASE_NUM_GPUS": "1"}
with lease(1, sys.argv[1], env=env, poll_s=0.05, timeout_s=5) as dev:
    print(dev, env["CUDA_VISIBLE_DEVICES"], flush=True)
    time.sleep(60)
"""


def test_cpu_when_no_gpu_requested(tmp_path):
    env: dict[str, str] = {}
    with lease(0, str(tmp_path), env=env) as dev:
        assert dev == "cpu"
    assert env == {}
    assert not any(tmp_path.iterdir())


def test_slots_from_num_gpus_and_visible_devices():
    assert gpu_slots({}) == ["0"]
    assert gpu_slots({"LAZYPHASE_NUM_GPUS": "3"}) == ["0", "1", "2"]
    assert gpu_slots({"CUDA_VISIBLE_DEVICES": "3,5", "LAZYPHASE_NUM_GPUS": "8"}) == ["3", "5"]


def test_two_concurrent_leases_get_different_devices(tmp_path):
    env1 = {"LAZYPHASE_NUM_GPUS": "2"}
    env2 = {"LAZYPHASE_NUM_GPUS": "2"}
    got: dict[str, str] = {}
    held = threading.Event()
    done = threading.Event()

    def second():
        held.wait()
        with lease(1, str(tmp_path), env=env2, poll_s=0.01, timeout_s=2) as dev:
            got["dev"] = dev
        done.set()

    t = threading.Thread(target=second)
    t.start()
    with lease(1, str(tmp_path), env=env1, poll_s=0.01, timeout_s=2) as dev:
        assert dev == "cuda"
        held.set()
        assert done.wait(5)
    t.join()
    assert got["dev"] == "cuda"
    assert {env1["CUDA_VISIBLE_DEVICES"], env2["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}


def test_user_visible_devices_restrict_the_slots(tmp_path):
    envs = [{"CUDA_VISIBLE_DEVICES": "3,5"} for _ in range(2)]
    with lease(1, str(tmp_path), env=envs[0], timeout_s=1) as d0:
        with lease(1, str(tmp_path), env=envs[1], timeout_s=1) as d1:
            assert d0 == d1 == "cuda"
            assert sorted(e["CUDA_VISIBLE_DEVICES"] for e in envs) == ["3", "5"]
            with pytest.raises(TimeoutError):  # both slots busy
                with lease(1, str(tmp_path), env={"CUDA_VISIBLE_DEVICES": "3,5"},
                           poll_s=0.01, timeout_s=0.05):  # fmt: skip
                    pass
    assert {p.name for p in tmp_path.iterdir()} == {"gpu3.lock", "gpu5.lock"}


def test_slurm_allocation_is_used_as_is(tmp_path, caplog):
    env = {"SLURM_JOB_ID": "123", "CUDA_VISIBLE_DEVICES": "2"}
    with caplog.at_level("INFO", logger="lazyphase.device"):
        with lease(1, str(tmp_path / "locks"), env=env) as dev:
            assert dev == "cuda"
    assert env == {"SLURM_JOB_ID": "123", "CUDA_VISIBLE_DEVICES": "2"}
    assert not (tmp_path / "locks").exists()
    assert "SLURM job 123: CUDA_VISIBLE_DEVICES=2" in caplog.text  # the job log names the GPU


def test_all_slots_busy_times_out(tmp_path):
    with lease(1, str(tmp_path), env={"LAZYPHASE_NUM_GPUS": "1"}):
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="no free GPU"):
            with lease(1, str(tmp_path), env={"LAZYPHASE_NUM_GPUS": "1"},
                       poll_s=0.02, timeout_s=0.1):  # fmt: skip
                pass
        assert time.monotonic() - t0 < 2


def test_lock_released_after_the_context(tmp_path):
    env = {"LAZYPHASE_NUM_GPUS": "1"}
    with lease(1, str(tmp_path), env=env, timeout_s=0.1):
        pass
    with lease(1, str(tmp_path), env=env, poll_s=0.01, timeout_s=0.1) as dev:
        assert dev == "cuda" and env["CUDA_VISIBLE_DEVICES"] == "0"


def test_empty_visible_devices_is_an_error(tmp_path):
    with pytest.raises(RuntimeError):
        with lease(1, str(tmp_path), env={"CUDA_VISIBLE_DEVICES": ""}):
            pass


def test_lock_is_exclusive_across_processes_and_freed_by_sigkill(tmp_path):
    src = Path(__file__).resolve().parents[1] / "src"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"},
    )  # fmt: skip
    try:
        assert proc.stdout.readline().split() == ["cuda", "0"]
        with pytest.raises(TimeoutError):  # the other process holds slot 0
            with lease(1, str(tmp_path), env={"LAZYPHASE_NUM_GPUS": "1"},
                       poll_s=0.02, timeout_s=0.1):  # fmt: skip
                pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        env = {"LAZYPHASE_NUM_GPUS": "1"}
        with lease(1, str(tmp_path), env=env, poll_s=0.02, timeout_s=1) as dev:
            assert dev == "cuda" and env["CUDA_VISIBLE_DEVICES"] == "0"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_job_device_falls_back_to_the_cpu_without_cuda(tmp_path, caplog):
    """A job that asks for a GPU on a machine where CUDA does not work runs on the CPU (with a
    warning); the availability check runs after CUDA_VISIBLE_DEVICES is set to the leased slot."""
    seen: list[str | None] = []
    env = {"CUDA_VISIBLE_DEVICES": "2,3"}

    def no_cuda() -> bool:
        seen.append(env.get("CUDA_VISIBLE_DEVICES"))
        return False

    with job_device(1, cuda_available=no_cuda, lock_dir=str(tmp_path), env=env) as dev:
        assert dev == "cpu"
    assert seen == ["2"]  # checked once, with the leased slot already exported
    assert "CUDA is not available" in caplog.text
    with job_device(0, cuda_available=no_cuda, lock_dir=str(tmp_path), env={}) as dev:
        assert dev == "cpu" and len(seen) == 1  # no GPU asked: no check


def test_job_device_on_a_gpu_keeps_float32_strict(tmp_path):
    import torch

    env = {"LAZYPHASE_NUM_GPUS": "2"}
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        with job_device(1, cuda_available=lambda: True, lock_dir=str(tmp_path), env=env) as dev:
            assert dev == "cuda" and env["CUDA_VISIBLE_DEVICES"] == "0"
            assert torch.get_float32_matmul_precision() == "highest"
            assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.set_float32_matmul_precision(before)
    strict_float32()  # idempotent on a CPU-only build
