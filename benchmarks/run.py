"""lazyphase benchmarks (issue 7): measured ratios, every pair measured side by side in one run.

    .venv/bin/python benchmarks/run.py [--quick] [--threads 2] [--only ntk,gd,ensemble,dryrun]

a. per-layer NTK: the layer identity (``per_layer_ntk``) against the torch.func Jacobian
   contraction (``vmap(jacrev)`` then a per-layer einsum, as in the PyTorch NTK tutorial):
   time ratio, peak memory of each (``ru_maxrss`` of a fresh subprocess per method, minus the
   process's ``ru_maxrss`` just before the computation), max relative disagreement.
b. training throughput: achieved GFLOP/s of one GD step against the measured ``torch.mm`` rate.
c. ensembles: R replicas trained batched (one ``train_replicas`` call) against one at a time.
d. pipeline overhead: ``snakemake -n`` on a generated grid of 10,000 cells.

Not part of the tests. Results of a full run are in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

from lazyphase.cells import validate_cell  # noqa: E402
from lazyphase.core import activations  # noqa: E402
from lazyphase.core.data import generator, sphere  # noqa: E402
from lazyphase.core.kernels import per_layer_ntk  # noqa: E402
from lazyphase.core.model import backward, descend, forward, init_params, resolve_scales  # noqa: E402

D = 8  # input dimension of every benchmark
JAC_LIMIT_BYTES = 4e9  # skip the Jacobian when it would exceed this


def best_time(fn, repeats: int, budget_s: float = 20.0) -> float:
    """Minimum wall time of ``fn()`` over up to ``repeats`` runs (fewer if a run is slow)."""
    fn()  # warm-up
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def setup(m: int, depth: int, n: int, dtype=torch.float64, act: str = "tanh", seed: int = 0):
    cell = validate_cell(dict(m=m, depth=depth, d=D, n=n, activation=act, s=0.0, dtype="float64"))
    sc = resolve_scales(cell)
    params = [p.to(dtype) for p in init_params(cell, [sc], [seed])]
    x = sphere(n, D, generator(seed + 1)).to(dtype)[None]
    alpha = torch.tensor([sc.alpha], dtype=dtype)
    return cell, params, x, alpha, activations.get(act)


def n_params(m: int, depth: int) -> int:
    return D * m + (depth - 1) * m * m + m


# --------------------------------------------------------------------------- a. per-layer NTK


def ntk_identity(params, x, act, alpha, bias) -> torch.Tensor:
    return per_layer_ntk(params, x, act, alpha, bias)[0]


def ntk_jacobian(params, x, act, alpha, bias) -> torch.Tensor:
    from torch.func import jacrev, vmap

    def f(ps, xi):
        return forward([p[None] for p in ps], xi[None, None], act, alpha, bias).out[0, 0]

    jac = vmap(jacrev(f), in_dims=(None, 0))([p[0] for p in params], x[0])
    return torch.stack([torch.einsum("i...,j...->ij", j, j) for j in jac])


def ntk_worker(method: str, m: int, depth: int, n: int, repeats: int, out: str) -> None:
    """Run in a fresh subprocess: time one method, report its peak RSS, save its result."""
    cell, params, x, alpha, act = setup(m, depth, n)
    fn = {"identity": ntk_identity, "jacobian": ntk_jacobian}[method]
    base = maxrss_mb()
    t0 = time.perf_counter()
    theta = fn(params, x, act, alpha, cell["bias"])
    first = time.perf_counter() - t0
    peak = maxrss_mb()
    times = [first]
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        fn(params, x, act, alpha, cell["bias"])
        times.append(time.perf_counter() - t0)
    t = min(times)
    torch.save(theta, out)
    print(json.dumps({"time_s": t, "peak_mb": peak - base, "rss_mb": peak}))


def bench_ntk(ms, depth: int, n: int, threads: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for m in ms:
            jac_bytes = n * n_params(m, depth) * 8
            res = {}
            for method in ("identity", "jacobian"):
                if method == "jacobian" and jac_bytes > JAC_LIMIT_BYTES:
                    continue
                out = os.path.join(tmp, f"{method}{m}.pt")
                repeats = 5 if method == "identity" else 2
                r = subprocess.run(
                    [sys.executable, __file__, "--threads", str(threads), "--_ntk-worker",
                     method, str(m), str(depth), str(n), str(repeats), out],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                res[method] = json.loads(r.stdout.strip().splitlines()[-1])
                res[method]["theta"] = torch.load(out)
            row = {"m": m, "params": n_params(m, depth), "jac_gb": jac_bytes / 1e9,
                   "id_s": res["identity"]["time_s"], "id_mb": res["identity"]["peak_mb"],
                   "id_rss": res["identity"]["rss_mb"]}  # fmt: skip
            if "jacobian" in res:
                a, b = res["identity"]["theta"], res["jacobian"]["theta"]
                row |= {
                    "jac_s": res["jacobian"]["time_s"],
                    "jac_mb": res["jacobian"]["peak_mb"],
                    "jac_rss": res["jacobian"]["rss_mb"],
                    "rel_err": float(((a - b).abs().amax(dim=(1, 2)) / b.abs().amax(dim=(1, 2))).max()),
                }
            rows.append(row)
            print_ntk_row(row, depth, n)
    return rows


def print_ntk_row(r: dict, depth: int, n: int) -> None:
    head = f"  m={r['m']:5d} L={depth} n={n} P={r['params']:>9,d}  identity {r['id_s'] * 1e3:8.1f} ms"
    head += f" RSS {r['id_rss']:6.0f} MB (+{r['id_mb']:4.0f}) | J = n·P·8 B = {r['jac_gb']:5.2f} GB"
    if "jac_s" in r:
        head += (f" | jacobian {r['jac_s'] * 1e3:8.0f} ms RSS {r['jac_rss']:6.0f} MB"
                 f" (+{r['jac_mb']:4.0f}) | time x{r['jac_s'] / r['id_s']:6.1f}"
                 f"  RSS x{r['jac_rss'] / r['id_rss']:5.1f}  max rel diff {r['rel_err']:.1e}")  # fmt: skip
    else:
        head += f" | jacobian skipped (would be {r['jac_gb']:.1f} GB > 4 GB)"
    print(head, flush=True)


# --------------------------------------------------------------------------- b. GD throughput


def step_flops(n: int, m: int, depth: int, d: int = D) -> int:
    """Matmul FLOPs of one GD step (bias-free; elementwise activation work not counted):
    forward  2n(d·m + (L−1)·m² + m)   [z_1 = X W1ᵀ, z_l = H W_lᵀ, f = H a]
    backward 2n(L−1)·m²               [g_{l−1} = δ_l W_l for l = L … 2]
    gradient 2n(d·m + (L−1)·m² + m)   [δ_lᵀ H_{l−1} fused into the update (baddbmm)]"""
    fwd = 2 * n * (d * m + (depth - 1) * m * m + m)
    bwd = 2 * n * (depth - 1) * m * m
    return 2 * fwd + bwd


def bench_gd(ms, depth: int, n: int) -> list[dict]:
    rows = []
    for dtype in (torch.float64, torch.float32):
        sq = 2048 if max(ms) >= 2048 else 512
        a, b = torch.randn(sq, sq, dtype=dtype), torch.randn(sq, sq, dtype=dtype)
        square = 2 * sq**3 / best_time(lambda: torch.mm(a, b), 5) / 1e9  # noqa: B023
        for m in ms:
            cell, params, x, alpha, act = setup(m, depth, n, dtype)
            y = torch.randn(1, n, dtype=dtype, generator=generator(7))
            out = [p.clone() for p in params]
            eta = 1e-3

            def step():
                fwd = forward(params, x, act, alpha, cell["bias"])  # noqa: B023
                deltas = backward(params, fwd, act, alpha, eta * (fwd.out - y) / n)  # noqa: B023
                descend(fwd, deltas, params, out)  # noqa: B023

            t = best_time(step, 20, budget_s=10)
            h, w = torch.randn(n, m, dtype=dtype), torch.randn(m, m, dtype=dtype)
            same = 2 * n * m * m / best_time(lambda: torch.mm(h, w), 20, budget_s=5) / 1e9  # noqa: B023
            flops = step_flops(n, m, depth)
            r = {"dtype": str(dtype).removeprefix("torch."), "m": m, "step_ms": t * 1e3,
                 "gflops": flops / t / 1e9, "mm_same": same, "mm_square": square, "sq": sq}  # fmt: skip
            rows.append(r)
            peak = max(same, square)
            print(f"  {r['dtype']} m={m:5d} L={depth} n={n}: step {r['step_ms']:8.2f} ms "
                  f"{r['gflops']:7.1f} GFLOP/s | mm {n}x{m}x{m} {same:6.1f}, mm {sq}^3 "
                  f"{square:6.1f} GFLOP/s | {100 * r['gflops'] / peak:5.1f}% of peak (the larger)",
                  flush=True)  # fmt: skip
    return rows


# --------------------------------------------------------------------------- c. ensembles


def bench_ensemble(reps: int, steps: int, m: int = 64, n: int = 64, depth: int = 2) -> dict:
    import logging

    from lazyphase.core.train import train_replicas

    logging.getLogger("lazyphase").setLevel(logging.WARNING)
    cell = validate_cell(dict(m=m, n=n, d=D, depth=depth, activation="tanh", s=0.0,
                              max_steps=steps, tol_rel=1e-300, n_snapshots=10,
                              n_gram_snapshots=0, seeds=list(range(reps))))  # fmt: skip

    def batched():
        return train_replicas([cell], log_every=1e9)

    def serial():
        return [train_replicas([{**cell, "seeds": [s]}], log_every=1e9) for s in range(reps)]

    serial()  # warm-up (data generation, first calls)
    t0 = time.perf_counter()
    run = batched()
    t_b = time.perf_counter() - t0
    t0 = time.perf_counter()
    runs = serial()
    t_s = time.perf_counter() - t0
    statuses = set(run.result.status) | {s for r in runs for s in r.result.status}
    r = {"reps": reps, "steps": steps, "batched_s": t_b, "serial_s": t_s, "status": sorted(statuses)}
    print(f"  R={reps} m={m} n={n} L={depth} {steps} steps: batched {t_b:6.2f} s, "
          f"one at a time {t_s:6.2f} s -> speedup x{t_s / t_b:5.1f} (status {r['status']})",
          flush=True)  # fmt: skip
    return r


# --------------------------------------------------------------------------- d. dry run


def grid_config(n_ms: int, n_s: int, batch_over: list[str]) -> dict:
    ms = [16 * 2**i for i in range(n_ms)]
    s = [round(-0.5 + 1.5 * i / (n_s - 1), 4) for i in range(n_s)]
    return {"experiments": {"theta_lazy": {
        "grid": {"m": ms, "s": s, "scheme": ["lecun", "xavier", "uniform:0.25", "kaiming"],
                 "activation": ["tanh", "relu"], "depth": [1, 2, 3, 4, 5]},
        "seeds": [0, 1, 2],
        "fixed": {"n": 32, "d": 8},
        "batch_over": batch_over,
        "figures": ["theta_lazy_rd", "theta_lazy_threshold", "loss_decay", "gram_drift"],
    }}}  # fmt: skip


def bench_dryrun(n_ms: int, n_s: int, batch_over: list[str]) -> dict:
    import re

    import yaml

    cfg = grid_config(n_ms, n_s, batch_over)
    g = cfg["experiments"]["theta_lazy"]["grid"]
    cells = 1
    for v in g.values():
        cells *= len(v)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.yaml"
        path.write_text(yaml.safe_dump(cfg))
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", "-q", "rules", "--snakefile",
             str(ROOT / "Snakefile"), "--configfile", str(path), "--replace-workflow-config",
             "--directory", tmp],
            capture_output=True, text=True, cwd=tmp,
        )  # fmt: skip
        t = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(r.stdout[-2000:] + r.stderr[-2000:])
    total = re.search(r"^total\s+(\d+)", r.stdout, re.M)
    jobs = int(total.group(1)) if total else -1
    print(f"  snakemake -n on {cells:,d} cells, batch_over={batch_over} ({jobs} jobs): {t:5.1f} s "
          f"({'<' if t < 20 else '>='} 20 s target)", flush=True)  # fmt: skip
    return {"cells": cells, "jobs": jobs, "dryrun_s": t}


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--only", default="ntk,gd,ensemble,dryrun", help="comma-separated parts")
    ap.add_argument("--_ntk-worker", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args._ntk_worker:
        method, m, depth, n, repeats, out = args._ntk_worker
        ntk_worker(method, int(m), int(depth), int(n), int(repeats), out)
        return
    parts = args.only.split(",")
    q = args.quick
    print(f"lazyphase benchmarks: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'quick' if q else 'full'} sizes, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    if "ntk" in parts:
        print("a. per-layer NTK, float64 (identity vs vmap(jacrev) + einsum; RSS = peak ru_maxrss "
              "of a fresh subprocess per method, (+growth over its setup))", flush=True)  # fmt: skip
        bench_ntk([64, 256] if q else [256, 1024, 4096], depth=3, n=32 if q else 128,
                  threads=args.threads)  # fmt: skip
    if "gd" in parts:
        print("b. one GD step (forward + backward + fused update), GFLOP/s vs torch.mm", flush=True)
        bench_gd([256, 1024] if q else [256, 1024, 4096], depth=3, n=128)
    if "ensemble" in parts:
        print("c. ensembles: batched train_replicas vs one seed at a time", flush=True)
        bench_ensemble(*((8, 100) if q else (32, 500)))
    if "dryrun" in parts:
        print("d. pipeline overhead: snakemake -n", flush=True)
        for batch_over in (["s", "scheme"], []):
            bench_dryrun(*((5, 5) if q else (10, 25)), batch_over)


if __name__ == "__main__":
    main()
