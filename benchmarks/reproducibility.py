"""What changes a result: one small theta_lazy slice trained under two settings, compared.

    python benchmarks/reproducibility.py            # threads 1 vs 2; AVX-512 vs AVX2 kernels

The slice (:data:`SLICE`: depth 1, tanh, m = 32 and 128, s = -0.5 … 1, 3 seeds, float64)
gives regime exponents (one per s and layer) and a threshold ``s*`` per layer, the summary
numbers of the paper figures. Two runs are compared on (docs/reproducibility.md):

- ``bitwise``: every dataset of every run file has the same bytes;
- ``max_rel``: the largest relative difference of any float dataset entry;
- ``d_exponent`` / ``d_s_star``: the largest absolute difference of an exponent / of ``s*``.

Measured here: torch intra-op threads 1 against 2 in one process, and the default CPU kernels
against AVX2 ones in a child process (``ATEN_CPU_CAPABILITY=avx2`` for ATen's vectorised
kernels, ``MKL_ENABLE_INSTRUCTIONS=AVX2`` for MKL's BLAS): the code paths a CPU without
AVX-512 takes. ``benchmarks/gpu_check.py`` compares the CPU against the GPU with the same
functions.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lazyphase.pipeline.jobs import train_cells  # noqa: E402
from lazyphase.stats import fit_exponents, thresholds  # noqa: E402
from lazyphase.store.tables import collect  # noqa: E402

#: The slice: its grid (m × s) and the fixed keys of every cell.
SLICE = {
    "m": (32, 128),
    "s": (-0.5, 0.0, 0.5, 1.0),
    "fixed": dict(
        depth=1,
        activation="tanh",
        seeds=[0, 1, 2],
        n=16,
        d=4,
        n_test=16,
        max_steps=1500,
        n_snapshots=10,
        n_gram_snapshots=2,
    ),
}
#: The child-process environment of a CPU without AVX-512 (ATen and MKL kernels).
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def slice_cells(ms: Sequence[int] = SLICE["m"], **fixed) -> list[dict]:
    """The cells of :data:`SLICE` (widths ``ms``, m outer, s inner); ``fixed`` overrides its
    fixed keys (``dtype="float32"``, ``n=32``, ...)."""
    fixed = {**SLICE["fixed"], **fixed}
    return [dict(m=m, s=s, **fixed) for m in ms for s in SLICE["s"]]


def train_slice(out_dir: str | Path, *, threads: int = 1, gpus: int = 0, **kw) -> list[str]:
    """Train :func:`slice_cells` (``kw``) in one job of ``threads`` threads (``gpus`` = 1: on a
    leased GPU, in the deterministic GPU mode) and return the run files' paths."""
    cells = slice_cells(**kw)
    outs = [str(Path(out_dir) / f"m{c['m']}_s{c['s']}.h5") for c in cells]
    for m in sorted({c["m"] for c in cells}):  # one job per width: a batch shares m
        idx = [i for i, c in enumerate(cells) if c["m"] == m]
        train_cells([cells[i] for i in idx], [outs[i] for i in idx], threads=threads, gpus=gpus,
                    log_every=1e9)  # fmt: skip
    return outs


def summary(paths: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(exponents, thresholds)`` of the run files (stats.fit_exponents / stats.thresholds,
    200 bootstrap draws)."""
    runs, _ = collect(list(paths), "slice")
    exps, boot = fit_exponents(runs, n_boot=200)
    return exps, thresholds(exps, boot)


def datasets(path: str) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None
        )
    return out


def _max_rel(a: np.ndarray, b: np.ndarray) -> float:
    if a.dtype.kind != "f" or a.size == 0:
        return 0.0 if np.array_equal(a, b) else float("inf")
    ok = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(ok, np.isfinite(b)) or not np.array_equal(ok, np.isfinite(a)):
        return float("inf")  # one side finite, the other not
    scale = np.maximum(np.abs(a[ok]), np.abs(b[ok]))
    diff = np.abs(a[ok] - b[ok])
    return float(
        np.max(np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), 0.0), initial=0)
    )


def compare(a: Sequence[str], b: Sequence[str]) -> dict[str, object]:
    """The differences of two trainings of the same slice (run files ``a[i]`` ~ ``b[i]``):
    ``bitwise`` (bool), ``max_rel``, ``d_exponent``, ``d_s_star`` (floats), ``s_star`` (the
    first training's, one per layer)."""
    bitwise, max_rel = True, 0.0
    for pa, pb in zip(a, b, strict=True):
        da, db = datasets(pa), datasets(pb)
        if da.keys() != db.keys():
            raise ValueError(f"{pa} and {pb} hold different datasets")
        for k in da:
            bitwise &= da[k].tobytes() == db[k].tobytes()
            max_rel = max(max_rel, _max_rel(da[k], db[k]))
    (ea, ta), (eb, tb) = summary(a), summary(b)
    return {
        "bitwise": bool(bitwise),
        "max_rel": max_rel,
        "d_exponent": float(np.nanmax(np.abs(ea["slope"].to_numpy() - eb["slope"].to_numpy()))),
        "d_s_star": float(np.nanmax(np.abs(ta["s_star"].to_numpy() - tb["s_star"].to_numpy()))),
        "s_star": [round(float(v), 4) for v in ta["s_star"]],
    }


def line(name: str, c: dict[str, object]) -> str:
    """One table row of :func:`compare`'s result."""
    return (f"| {name} | {'yes' if c['bitwise'] else 'no'} | {c['max_rel']:.1e} | "
            f"{c['d_exponent']:.1e} | {c['d_s_star']:.1e} | {c['s_star']} |")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", metavar="DIR", help="only train the slice into DIR (child mode)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--m", type=int, nargs="+", default=list(SLICE["m"]), help="the widths")
    ap.add_argument("--n", type=int, default=SLICE["fixed"]["n"], help="training points")
    args = ap.parse_args()
    kw = dict(ms=args.m, n=args.n)
    if args.train:
        train_slice(args.train, threads=args.threads, **kw)
        return 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        one = train_slice(Path(tmp) / "t1", threads=1, **kw)
        two = train_slice(Path(tmp) / "t2", threads=2, **kw)
        again = train_slice(Path(tmp) / "t1b", threads=1, **kw)
        env = {**os.environ, **AVX2_ENV}
        cmd = [sys.executable, __file__, "--train", str(Path(tmp) / "avx2"), "--n", str(args.n),
               "--m", *map(str, args.m)]  # fmt: skip
        subprocess.run(cmd, env=env, check=True)
        avx2 = [str(Path(tmp) / "avx2" / Path(p).name) for p in one]
        print("| compared | bitwise | max rel. diff | max abs. diff exponent | max abs. diff s* "
              "| s* (first) |\n|---|---|---|---|---|---|")  # fmt: skip
        print(line("same settings, twice", compare(one, again)))
        print(line("threads 1 vs 2", compare(one, two)))
        print(line("AVX-512 vs AVX2 kernels (threads 1)", compare(one, avx2)))
    print(f"\nm {args.m}, n {args.n}: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
