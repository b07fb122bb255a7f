"""The GPU check of issue 14: one table, at most ~5 minutes on a CUDA machine.

    benchmarks/gpu_check.sh            (or: python benchmarks/gpu_check.py [--device cpu])

1. per-layer NTK (``per_layer_ntk``) against the Jacobian oracle (``torch.func.jacrev``) in
   float64 on the device: max relative difference (pass < 1e-10);
2. one GD step (forward, backward, fused update) against ``torch.mm`` of the same shape on the
   same device and dtype: achieved GFLOP/s and the ratio (reported; pass > 0.1);
3. a small theta_lazy slice (L = 1, m = 256 and 1024, s = 1, lazy side) in float64 and float32:
   the RD exponents of every layer in m agree (pass: |difference| < 0.05);
4. the lease logic: two concurrent jobs in two processes get different GPU slots (pass).
Without CUDA it says so and runs the same checks on the CPU (the lease check with fake slots).
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

from lazyphase.cells import validate_cell  # noqa: E402
from lazyphase.core import activations  # noqa: E402
from lazyphase.core.data import generator, sphere  # noqa: E402
from lazyphase.core.kernels import per_layer_ntk  # noqa: E402
from lazyphase.core.model import backward, descend, forward, init_params, resolve_scales  # noqa: E402
from lazyphase.core.train import train_replicas  # noqa: E402
from lazyphase.pipeline.budget import n_params  # noqa: E402

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


def check_step(device):
    m, depth, n = (4096, 3, 128) if device == "cuda" else (1024, 2, 128)
    for dtype in (torch.float64, torch.float32):
        cell, params, x, alpha, act = setup(m, depth, n, dtype, device)
        y = torch.randn(1, n, dtype=dtype, generator=generator(7)).to(device)
        out = [p.clone() for p in params]

        def step():
            fwd = forward(params, x, act, alpha, False)  # noqa: B023
            d = backward(params, fwd, act, alpha, 1e-3 * (fwd.out - y) / n)  # noqa: B023
            descend(fwd, d, params, out)  # noqa: B023

        def timed(fn, reps=10):
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            if device == "cuda":
                torch.cuda.synchronize()
            return (time.perf_counter() - t0) / reps

        t = timed(step)
        flops = 6 * n * n_params(cell)
        h, w = (
            torch.randn(n, m, dtype=dtype, device=device),
            torch.randn(m, m, dtype=dtype, device=device),
        )
        mm = 2 * n * m * m / timed(lambda: torch.mm(h, w)) / 1e9  # noqa: B023
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
        from lazyphase.pipeline.device import strict_float32

        strict_float32()
        print(f"CUDA: {torch.cuda.get_device_name(0)}", flush=True)
    start = time.perf_counter()
    check_ntk(device)
    check_step(device)
    check_slice(device)
    check_lease()
    print("\n| check | measured | target | result |\n|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")
    print(f"\n{time.perf_counter() - start:.0f} s on {device}")
    sys.exit(0 if all(r[3] == "PASS" for r in ROWS) else 1)


if __name__ == "__main__":
    main()
