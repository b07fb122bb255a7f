"""The GPU check of issue 14: one table, at most ~5 minutes on a CUDA machine.

    benchmarks/gpu_check.sh            (or: python benchmarks/gpu_check.py [--device cpu])

1. per-layer NTK (``per_layer_ntk``) against the Jacobian oracle (``torch.func.jacrev``) in
   float64 on the device: max relative difference (pass < 1e-10);
2. one GD step (forward, backward, fused update) against ``torch.mm`` of the same shape on the
   same device and dtype: achieved GFLOP/s and the ratio (reported; pass > 0.1);
3. a small theta_lazy slice (L = 1, m = 256 and 1024, s = 1, lazy side) in float64 and float32:
   the RD exponents of every layer in m agree (pass: |difference| < 0.05);
4. the lease logic: two concurrent jobs in two processes get different GPU slots (pass);
5. reproducibility (docs/reproducibility.md): the slice of ``benchmarks/reproducibility.py``
   (float64) trained through ``train_cells`` on the CPU and on the GPU: regime exponents and
   ``s*`` agree within ``CPU_GPU_TOLERANCE`` (pass), and two GPU trainings give the same bits
   (pass). The GPU jobs run in the deterministic GPU mode with
   ``LAZYPHASE_GPU_DETERMINISTIC=strict``: an op without a deterministic CUDA kernel fails;
6. the cost of the deterministic GPU mode: the GD step's time with it against without it
   (and, in float32, against TF32 on) (reported).
Without CUDA it says so and runs the same checks on the CPU (the lease check with fake slots;
check 5 compares 1 against 2 CPU threads).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from reproducibility import compare, train_slice  # noqa: E402

from lazyphase.cells import validate_cell  # noqa: E402
from lazyphase.core import activations  # noqa: E402
from lazyphase.core.data import generator, sphere  # noqa: E402
from lazyphase.core.kernels import per_layer_ntk  # noqa: E402
from lazyphase.core.model import backward, descend, forward, init_params, resolve_scales  # noqa: E402
from lazyphase.core.train import train_replicas  # noqa: E402
from lazyphase.pipeline.budget import n_params  # noqa: E402
from lazyphase.pipeline.device import (  # noqa: E402
    CPU_GPU_TOLERANCE,
    DETERMINISTIC_ENV,
    deterministic_mode,
)

ROWS: list[tuple[str, str, str, str]] = []


def row(check: str, measured: str, target: str, ok: bool) -> None:
    ROWS.append((check, measured, target, "PASS" if ok else "FAIL"))
    print(f"  {check}: {measured} ({'PASS' if ok else 'FAIL'})", flush=True)


def setup(m, depth, n, dtype, device):
    cell = validate_cell(dict(m=m, depth=depth, d=8, n=n, activation="tanh", s=0.5))
    sc = resolve_scales(cell)
    params = [p.to(device, dtype) for p in init_params(cell, [sc], [0])]
    x = sphere(n, 8, generator(1)).to(device, dtype)[None]
    alpha = torch.tensor([sc.alpha], dtype=dtype, device=device)
    return cell, params, x, alpha, activations.get("tanh")


def check_ntk(device):
    _cell, params, x, alpha, act = setup(64, 2, 16, torch.float64, device)
    ours = per_layer_ntk(params, x, act, alpha, False)[0]

    def f(ps, xi):
        return forward([p[None] for p in ps], xi[None, None], act, alpha, False).out[0, 0]

    jac = torch.func.vmap(torch.func.jacrev(f), in_dims=(None, 0))([p[0] for p in params], x[0])
    oracle = torch.stack([torch.einsum("i...,j...->ij", j, j) for j in jac])
    rel = float((ours - oracle).abs().max() / oracle.abs().max())
    row(
        f"NTK per layer vs Jacobian, float64, {device}",
        f"max rel diff {rel:.1e}",
        "< 1e-10",
        rel < 1e-10,
    )


def timed(fn, device, reps=10):
    """Seconds per call of ``fn`` (after one warm-up call)."""
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps


def gd_step(m, depth, n, dtype, device):
    """``(cell, step)``: one GD step (forward, backward, fused update) of a fixed network."""
    cell, params, x, alpha, act = setup(m, depth, n, dtype, device)
    y = torch.randn(1, n, dtype=dtype, generator=generator(7)).to(device)
    out = [p.clone() for p in params]

    def step():
        fwd = forward(params, x, act, alpha, False)
        d = backward(params, fwd, act, alpha, 1e-3 * (fwd.out - y) / n)
        descend(fwd, d, params, out)

    return cell, step


def step_size(device):
    return (4096, 3, 128) if device == "cuda" else (1024, 2, 128)


def check_step(device):
    m, depth, n = step_size(device)
    for dtype in (torch.float64, torch.float32):
        cell, step = gd_step(m, depth, n, dtype, device)
        t = timed(step, device)
        flops = 6 * n * n_params(cell)
        h, w = (
            torch.randn(n, m, dtype=dtype, device=device),
            torch.randn(m, m, dtype=dtype, device=device),
        )
        mm = 2 * n * m * m / timed(lambda: torch.mm(h, w), device) / 1e9  # noqa: B023
        ach = flops / t / 1e9
        name = str(dtype).removeprefix("torch.")
        row(f"GD step vs torch.mm, {name}, m={m} L={depth} n={n}, {device}",
            f"{ach:.0f} vs {mm:.0f} GFLOP/s ({ach / mm:.2f})", "> 0.1 of mm", ach / mm > 0.1)  # fmt: skip


def check_slice(device):
    exps = {}
    for dtype in ("float64", "float32"):
        rd = []
        for m in (256, 1024):
            cell = validate_cell(dict(m=m, depth=1, d=8, n=32, n_test=32, s=1.0, dtype=dtype,
                                      activation="tanh", seeds=[0, 1], max_steps=3000,
                                      tol_rel=1e-3, n_gram_snapshots=0))  # fmt: skip
            run = train_replicas([cell], device=device, log_every=1e9)
            rd.append(np.exp(np.log(run.result.rd[:, -1, :]).mean(axis=0)))
        exps[dtype] = np.log(rd[1] / rd[0]) / np.log(1024 / 256)
    diff = float(np.abs(exps["float64"] - exps["float32"]).max())
    row(f"lazy-side RD exponents, float64 vs float32, {device}",
        "f64 " + ", ".join(f"{e:.3f}" for e in exps["float64"])
        + " | f32 " + ", ".join(f"{e:.3f}" for e in exps["float32"]), "abs. diff < 0.05",
        diff < 0.05)  # fmt: skip


def check_reproducible(device):
    """Check 5: the summary numbers of the slice, CPU against ``device`` (CPU: 1 against 2
    threads), within CPU_GPU_TOLERANCE; on a GPU also two GPU trainings bit for bit."""
    tol = CPU_GPU_TOLERANCE
    os.environ[DETERMINISTIC_ENV] = "strict"  # an op without a deterministic kernel fails
    with tempfile.TemporaryDirectory() as tmp:
        cpu = train_slice(Path(tmp) / "cpu", threads=1)
        gpus, threads = (1, 1) if device == "cuda" else (0, 2)
        other = train_slice(Path(tmp) / "other", threads=threads, gpus=gpus)
        c = compare(cpu, other)
        what = "CPU vs GPU" if device == "cuda" else "CPU 1 vs 2 threads"
        row(f"summary numbers, {what}, float64",
            f"exponents {c['d_exponent']:.1e}, s* {c['d_s_star']:.1e} (bitwise: "
            f"{'yes' if c['bitwise'] else 'no'}; max rel. diff {c['max_rel']:.1e})",
            f"< {tol['exponent']:g}, < {tol['s_star']:g}",
            c["d_exponent"] < tol["exponent"] and c["d_s_star"] < tol["s_star"])  # fmt: skip
        if device == "cuda":
            again = compare(other, train_slice(Path(tmp) / "again", threads=1, gpus=1))
            row("GPU run twice, deterministic mode, float64",
                f"bitwise: {'yes' if again['bitwise'] else 'no'} "
                f"(max rel. diff {again['max_rel']:.1e})", "bitwise", again["bitwise"])  # fmt: skip
    os.environ[DETERMINISTIC_ENV] = "1"


def check_cost(device):
    """Check 6: the GD step's time in the deterministic GPU mode against without it (float32:
    also against TF32 on), reported. cuBLAS keeps the workspace it started with, so this
    measures the deterministic algorithms; the workspace's cost is its 32 MiB. On the CPU the
    mode changes nothing: the ratio is the timing noise."""
    m, depth, n = step_size(device)
    for dtype in (torch.float64, torch.float32):
        _, step = gd_step(m, depth, n, dtype, device)
        t = {}
        for flag in ("1", "0"):  # "0": TF32 off, not deterministic
            os.environ[DETERMINISTIC_ENV] = flag
            with deterministic_mode(device):
                t[flag] = timed(step, device)
        t_det, t_plain = t["1"], t["0"]
        name = str(dtype).removeprefix("torch.")
        measured = f"{t_det * 1e3:.2f} ms vs {t_plain * 1e3:.2f} ms ({t_det / t_plain:.2f}x)"
        if dtype == torch.float32 and device == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            measured += f"; TF32 on {timed(step, device) * 1e3:.2f} ms"
            torch.backends.cuda.matmul.allow_tf32 = False
        if device != "cuda":
            measured += ", no mode on the CPU: noise"
        row(f"deterministic mode cost, GD step, {name}, m={m} L={depth} n={n}, {device}",
            measured, "reported", True)  # fmt: skip


def _lease_worker(lock_dir, q, barrier):
    from lazyphase.pipeline.device import lease

    env = {"LAZYPHASE_NUM_GPUS": "2"} if not torch.cuda.is_available() else dict(os.environ)
    if torch.cuda.is_available() and torch.cuda.device_count() < 2:
        env = {"LAZYPHASE_NUM_GPUS": "2"}  # one physical GPU: two slots, as `gpu: 2` would
    with lease(1, lock_dir, env=env, poll_s=0.05, timeout_s=20):
        barrier.wait(timeout=20)  # both hold a slot at once
        q.put(env["CUDA_VISIBLE_DEVICES"])


def check_lease():
    with tempfile.TemporaryDirectory() as lock_dir:
        ctx = mp.get_context("spawn")
        q, barrier = ctx.Queue(), ctx.Barrier(2)
        procs = [ctx.Process(target=_lease_worker, args=(lock_dir, q, barrier)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        got = sorted(q.get(timeout=5) for _ in range(2))
    row("lease: two concurrent jobs", f"slots {got}", "two different slots", len(set(got)) == 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", choices=["cpu", "cuda"], default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cuda = torch.cuda.is_available()
    device = args.device or ("cuda" if cuda else "cpu")
    if not cuda:
        print("no CUDA device: running the CPU half (the same checks on the CPU)", flush=True)
    else:
        print(f"CUDA: {torch.cuda.get_device_name(0)}", flush=True)
    os.environ[DETERMINISTIC_ENV] = "1"  # as the jobs: warn-only; check 5 trains strict
    start = time.perf_counter()
    with deterministic_mode(device):  # before the first matmul: cuBLAS reads its workspace
        check_ntk(device)
        check_step(device)
        check_slice(device)
        check_reproducible(device)
    check_cost(device)
    check_lease()
    print("\n| check | measured | target | result |\n|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")
    print(f"\n{time.perf_counter() - start:.0f} s on {device}")
    sys.exit(0 if all(r[3] == "PASS" for r in ROWS) else 1)


if __name__ == "__main__":
    main()
