"""Device choice for a job: CPU by default, a leased GPU when the job's resources ask for one.

On a workstation, Snakemake only counts GPUs (``--resources gpu=N``); the job itself takes a
concrete device with a non-blocking ``flock`` on one lock file per GPU and exports
``CUDA_VISIBLE_DEVICES`` *before* CUDA starts. A user-set ``CUDA_VISIBLE_DEVICES`` restricts the
slots; under SLURM (``SLURM_JOB_ID`` set) the allocation's variable is used as it is.

On a GPU a job runs in the deterministic GPU mode (:func:`deterministic_mode`; what it costs and
what stays different from the CPU: docs/reproducibility.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping

from lazyphase.store.provenance import determinism_settings

log = logging.getLogger("lazyphase.device")

#: The cuBLAS workspace setting of the deterministic GPU mode: cuBLAS gives the same bits run to
#: run only with a fixed workspace, ``:4096:8`` (8 buffers of 4 MiB) or ``:16:8``.
CUBLAS_WORKSPACE = ":4096:8"
#: ``0``: GPU jobs train without the deterministic GPU mode (TF32 stays off); ``1`` (the
#: default): with it, warn-only; ``strict``: with it, an op without a deterministic kernel fails.
DETERMINISTIC_ENV = "LAZYPHASE_GPU_DETERMINISTIC"
#: The largest absolute differences of the summary numbers between a CPU and a GPU run of the
#: same float64 cells (docs/reproducibility.md; ``benchmarks/gpu_check.py`` asserts them):
#: regime exponents and thresholds ``s*``.
CPU_GPU_TOLERANCE = {"exponent": 1e-6, "s_star": 1e-6}


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


def _set_torch_flags(flags: Mapping[str, object]) -> None:
    """Set torch's flags of :func:`~lazyphase.store.provenance.determinism_settings` (but
    ``CUBLAS_WORKSPACE_CONFIG``) to ``flags``."""
    import torch

    torch.use_deterministic_algorithms(bool(flags["deterministic_algorithms"]),
                                       warn_only=bool(flags["warn_only"]))  # fmt: skip
    torch.backends.cudnn.deterministic = bool(flags["cudnn_deterministic"])
    torch.backends.cudnn.benchmark = bool(flags["cudnn_benchmark"])
    # precision first: it sets allow_tf32 of matmuls too; setting that again only where it
    # differs, as the legacy flag alone leaves the backends disagreeing
    if flags["float32_matmul_precision"] is not None:
        torch.set_float32_matmul_precision(str(flags["float32_matmul_precision"]))
    if torch.backends.cuda.matmul.allow_tf32 != bool(flags["tf32_matmul"]):
        torch.backends.cuda.matmul.allow_tf32 = bool(flags["tf32_matmul"])
    torch.backends.cudnn.allow_tf32 = bool(flags["tf32_cudnn"])


@contextlib.contextmanager
def deterministic_mode(
    device: str, *, env: MutableMapping[str, str] | None = None
) -> Iterator[bool]:
    """The deterministic GPU mode on ``device == "cuda"``, restored on exit; yields whether it
    is on.

    It sets ``env['CUBLAS_WORKSPACE_CONFIG'] = ':4096:8'`` (``os.environ`` by default; cuBLAS
    reads it when its first handle is made, so this must come before the first matmul),
    ``torch.use_deterministic_algorithms(True, warn_only=True)``, cuDNN deterministic without
    autotuning, and TF32 off (:func:`strict_float32`). Warn-only: an op without a deterministic
    CUDA kernel warns instead of failing a job of hours; ``env['LAZYPHASE_GPU_DETERMINISTIC']``
    ``= 'strict'`` makes it fail (``benchmarks/gpu_check.py`` trains so), ``= '0'`` turns the
    mode off but for TF32 (yields False). Nothing changes on the CPU, whose kernels give the
    same bits run to run already.
    """
    env = os.environ if env is None else env
    if not str(device).startswith("cuda"):
        yield False
        return
    saved, workspace = determinism_settings(), env.get("CUBLAS_WORKSPACE_CONFIG")
    mode = env.get(DETERMINISTIC_ENV, "1")
    if mode not in ("0", "1", "strict"):
        raise ValueError(f"{DETERMINISTIC_ENV}={mode!r}: expected 0, 1 or strict")
    on = mode != "0"
    try:
        strict_float32()
        if on:
            env["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE
            _set_torch_flags({**determinism_settings(), "deterministic_algorithms": True,
                              "warn_only": mode != "strict", "cudnn_deterministic": True,
                              "cudnn_benchmark": False})  # fmt: skip
        else:
            log.warning("%s=0: the GPU job runs without deterministic algorithms",
                        DETERMINISTIC_ENV)  # fmt: skip
        yield on
    finally:
        _set_torch_flags(saved)
        if workspace is None:
            env.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            env["CUBLAS_WORKSPACE_CONFIG"] = workspace


@contextlib.contextmanager
def job_device(
    gpus: int,
    *,
    cuda_available: Callable[[], bool] = _cuda_available,
    env: dict[str, str] | None = None,
    **lease_kw,
) -> Iterator[str]:
    """The device of a training job: :func:`lease` a GPU if ``gpus > 0``, then check that CUDA
    works in this process (after ``CUDA_VISIBLE_DEVICES`` is set, so the check sees the leased
    device only); fall back to ``"cpu"`` with a warning when it does not. On a GPU the job runs
    in the :func:`deterministic_mode` (TF32 off), undone on exit."""
    env = os.environ if env is None else env
    with lease(gpus, env=env, **lease_kw) as dev:
        if dev == "cuda" and not cuda_available():
            log.warning(
                "the job asked for %d GPU(s) but CUDA is not available: using the CPU", gpus
            )
            dev = "cpu"
        with deterministic_mode(dev, env=env):
            yield dev
