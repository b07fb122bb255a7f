"""Device choice for a job: CPU by default, a leased GPU when the job's resources ask for one.

On a workstation, Snakemake only counts GPUs (``--resources gpu=N``); the job itself takes a
concrete device with a non-blocking ``flock`` on one lock file per GPU and exports
``CUDA_VISIBLE_DEVICES`` *before* CUDA starts. A user-set ``CUDA_VISIBLE_DEVICES`` restricts the
slots; under SLURM (``SLURM_JOB_ID`` set) the allocation's variable is used as it is.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping

log = logging.getLogger("lazyphase.device")


def gpu_slots(env: Mapping[str, str]) -> list[str]:
    """The GPU ids a job may lease: ``CUDA_VISIBLE_DEVICES`` if set, else
    ``0 … LAZYPHASE_NUM_GPUS−1`` (default 1)."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    return [str(i) for i in range(int(env.get("LAZYPHASE_NUM_GPUS", "1")))]


@contextlib.contextmanager
def lease(
    gpus: int,
    lock_dir: str = ".lazyphase-gpu-locks",
    *,
    env: dict[str, str] | None = None,
    poll_s: float = 1.0,
    timeout_s: float | None = None,
) -> Iterator[str]:
    """Yield the torch device string for a job that asked for ``gpus`` GPUs (0 or 1).

    ``gpus == 0`` yields ``"cpu"``. Under SLURM yields ``"cuda"`` untouched. Otherwise waits for
    a free slot, sets ``env['CUDA_VISIBLE_DEVICES']`` to it (``os.environ`` by default) and yields
    ``"cuda"``; the lock is released on exit, and by the kernel if the process dies.
    """
    env = os.environ if env is None else env
    if gpus <= 0:
        yield "cpu"
        return
    if "SLURM_JOB_ID" in env:
        log.info("SLURM job %s: CUDA_VISIBLE_DEVICES=%s (SLURM's, used as is)",
                 env["SLURM_JOB_ID"], env.get("CUDA_VISIBLE_DEVICES"))  # fmt: skip
        yield "cuda"
        return
    slots = gpu_slots(env)
    if not slots:
        raise RuntimeError("the job asked for a GPU but CUDA_VISIBLE_DEVICES lists none")
    os.makedirs(lock_dir, exist_ok=True)
    waited = 0.0
    while True:
        for dev in slots:
            fh = open(os.path.join(lock_dir, f"gpu{dev}.lock"), "a")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            env["CUDA_VISIBLE_DEVICES"] = dev
            try:
                yield "cuda"
            finally:
                fh.close()
            return
        if timeout_s is not None and waited >= timeout_s:
            raise TimeoutError(f"no free GPU among {slots} after {waited:.0f}s")
        time.sleep(poll_s)
        waited += poll_s


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def strict_float32() -> None:
    """Keep float32 matmuls in full float32 on GPUs: TF32 off for matmuls and cuDNN.

    TF32 rounds matmul inputs to a 10-bit mantissa. float32 itself is tested against float64 on
    the lazy side (``tests/test_train.py``); TF32 is not (no GPU in CI), so it stays off."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


@contextlib.contextmanager
def job_device(
    gpus: int,
    *,
    cuda_available: Callable[[], bool] = _cuda_available,
    **lease_kw,
) -> Iterator[str]:
    """The device of a training job: :func:`lease` a GPU if ``gpus > 0``, then check that CUDA
    works in this process (after ``CUDA_VISIBLE_DEVICES`` is set, so the check sees the leased
    device only); fall back to ``"cpu"`` with a warning when it does not. On a GPU, TF32 is
    turned off (:func:`strict_float32`)."""
    with lease(gpus, **lease_kw) as dev:
        if dev == "cuda" and not cuda_available():
            log.warning(
                "the job asked for %d GPU(s) but CUDA is not available: using the CPU", gpus
            )
            dev = "cpu"
        if dev == "cuda":
            strict_float32()
        yield dev
