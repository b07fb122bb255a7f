"""The calibration probe of ``lazyphase calibrate``: time the trainer on this machine and solve
the cost model of :mod:`lazyphase.pipeline.budget` for its throughput (docs/scale.md).

The cost model itself (:mod:`~lazyphase.pipeline.budget`) only reads a calibration; this module
runs training to make one, so it sits above the trainer while the cost model does not.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from lazyphase.cells import validate_cell
from lazyphase.core.train import train_replicas
from lazyphase.pipeline.budget import Throughput, step_elements, step_flops

#: The calibration runs: (m, depth, replicas, steps), tanh. Two overhead-bound runs of a tiny
#: network (1 and 16 replicas), an activation-bound run (wide, one layer) and a FLOP-bound run
#: give ``step_s``, ``replica_s``, ``elem_ns`` and the rate.
CALIBRATION_RUNS = {
    "cpu": [(16, 1, 1, 400), (16, 1, 16, 400), (4096, 1, 4, 150), (1024, 2, 2, 150)],
    "cuda": [(16, 1, 1, 400), (16, 1, 64, 400), (65536, 1, 16, 200), (4096, 2, 16, 100)],
}


def measure_throughput(
    device: str = "cpu", dtype: str = "float64", *, scale: float = 1.0
) -> Throughput:
    """Time the trainer itself (:func:`lazyphase.core.train.train_replicas`, every replica to
    ``max_steps``) on the :data:`CALIBRATION_RUNS` and solve the cost model for
    ``(step_s, replica_s, 1/rate)``. ``scale`` multiplies the step counts (tests use less)."""
    logging.getLogger("lazyphase.train").setLevel(logging.WARNING)
    rows, times = [], []
    for m, depth, reps, steps in CALIBRATION_RUNS[device]:
        steps = max(int(steps * scale), 5)
        cell = validate_cell(
            dict(m=m, depth=depth, n=32, d=8, n_test=32, s=0.0, dtype=dtype, max_steps=steps,
                 activation="tanh",
                 tol_rel=1e-300, n_gram_snapshots=0, n_snapshots=2, seeds=list(range(reps)))
        )  # fmt: skip
        train_replicas([cell], device=device, log_every=1e9)  # warm-up (allocator, kernels)
        cpu0 = time.process_time()
        run = train_replicas([cell], device=device, log_every=1e9)
        cpu = time.process_time() - cpu0
        rows.append([1.0, reps, reps * step_flops(cell) / 1e9, reps * step_elements(cell) * 1e-9])
        # on the CPU with one thread, the process's CPU time: what the job would take alone on
        # its core (a machine shared with other work stretches wall time, not CPU time)
        one_core = device == "cpu" and torch.get_num_threads() == 1
        times.append((cpu if one_core else run.result.seconds) / steps)
    step_s, replica_s, inv_rate, elem_ns = np.linalg.solve(np.array(rows), np.array(times))
    # the overheads are small differences of noisy times: keep them non-negative
    step_s, replica_s, elem_ns = max(step_s, 0.0), max(replica_s, 0.0), max(elem_ns, 0.0)
    big = rows[-1]
    if inv_rate <= 0:  # fall back to the FLOP-bound run alone
        rest = times[-1] - step_s - big[1] * replica_s - big[3] * elem_ns
        inv_rate = max(rest, 1e-12) / big[2]
    return Throughput(1.0 / inv_rate, step_s, replica_s, source="measured", elem_ns=elem_ns)


def measure_matmul_gflops(device: str = "cpu", dtype: str = "float64", size: int = 1024) -> float:
    """The rate of ``torch.mm`` of two ``size × size`` matrices on ``device`` in GFLOP/s
    (``2 size³`` FLOPs; the best of 5 after a warm-up): the device's practical matmul peak.
    On the CPU with one thread it times the process's CPU time, as :func:`measure_throughput`."""
    dev = torch.device(device)
    clock = time.process_time if dev.type == "cpu" and torch.get_num_threads() == 1 else None
    clock = clock or time.perf_counter
    a = torch.randn(size, size, dtype=getattr(torch, dtype), device=dev)
    b = torch.randn(size, size, dtype=a.dtype, device=dev)
    torch.mm(a, b)
    best = math.inf
    for _ in range(5):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = clock()
        torch.mm(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, clock() - t0)
    return 2.0 * size**3 / best / 1e9


def gpu_probe(device: str, dtype: str, *, scale: float = 1.0) -> dict[str, float]:
    """The efficiency of :data:`lazyphase.pipeline.budget.GPU_EFFICIENCY` on ``device`` (a GPU
    when present, else the CPU): the GD step's rate (:func:`measure_throughput`) over
    :func:`measure_matmul_gflops`. Returns ``step_gflops, matmul_gflops, efficiency``."""
    step = measure_throughput(device, dtype, scale=scale).gflops
    mm = measure_matmul_gflops(device, dtype)
    return dict(step_gflops=step, matmul_gflops=mm, efficiency=step / mm)
