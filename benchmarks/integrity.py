"""Cost of the checksums (issue 21): write time, read time and size of one realistic run file
with and without fletcher32 + the sha256 seal, and of a parquet table with and without page
checksums. Each pair is measured side by side; times are the minimum over ``--repeat`` runs.

    PYTHONPATH=src .venv/bin/python benchmarks/integrity.py [--m 256] [--n 128] [--repeat 5]

The run file is trained once (m, depth 2, n = n_kernel points, 4 replicas, 20 trajectory and
10 Gram snapshots, weights stored) and rewritten by ``write_cell`` in three modes:
``plain`` (contiguous datasets, no seal: the writer before issue 21), ``fletcher32`` (the
filter only) and ``full`` (filter + seal: what the pipeline writes). Reading: ``h5py`` reads
every dataset (plain / fletcher32-verified), and ``load_run`` (full checks).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lazyphase.cells import validate_cell  # noqa: E402
from lazyphase.core.train import train_replicas  # noqa: E402
from lazyphase.store import h5 as h5mod  # noqa: E402
from lazyphase.store import runs as runs_mod  # noqa: E402
from lazyphase.store.files import read_table, write_table  # noqa: E402
from lazyphase.store.tables import run_tables  # noqa: E402


def best(fn, repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def _plain_ds(group, name, data):
    group.create_dataset(name, data=np.asarray(data), track_times=False)


def write_mode(mode: str, path: str, run, cell) -> None:
    """``write_cell`` with the checksum parts switched off as ``mode`` says."""
    orig_ds, orig_seal, orig_hash = runs_mod._ds, h5mod.seal, h5mod.content_sha256
    try:
        if mode == "plain":
            runs_mod._ds = _plain_ds
        if mode != "full":
            h5mod.seal = lambda f: None
            h5mod.content_sha256 = lambda a: ""
        runs_mod.write_cell(path, run, list(range(len(cell["seeds"]))), cell)
    finally:
        runs_mod._ds, h5mod.seal, h5mod.content_sha256 = orig_ds, orig_seal, orig_hash


def read_h5(path: str) -> None:
    def visit(name, obj) -> None:  # must return None, or visititems stops
        if isinstance(obj, h5py.Dataset):
            obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(visit)


def drop_cache(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--m", type=int, default=256)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    cell = validate_cell(
        dict(m=args.m, depth=2, n=args.n, d=8, n_test=args.n, seeds=[0, 1, 2, 3], max_steps=200,
             n_snapshots=20, n_gram_snapshots=10, weight_snapshots=False)
    )  # fmt: skip
    t = time.perf_counter()
    run = train_replicas([cell])
    print(f"trained in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    tmp = tempfile.mkdtemp()
    rows = []
    for mode in ("plain", "fletcher32", "full"):
        path = os.path.join(tmp, f"{mode}.h5")
        w = best(lambda m=mode, p=path: write_mode(m, p, run, cell), args.repeat)
        size = os.path.getsize(path)
        r = best(lambda p=path: read_h5(p), args.repeat)
        r_load = best(lambda p=path: runs_mod.load_run(p), args.repeat) if mode == "full" else None
        rows.append((mode, w, r, r_load, size))
    with h5py.File(os.path.join(tmp, "full.h5")) as f:
        theta = f["gram/theta"]
        print(f"gram/theta {theta.shape} {theta.dtype}, chunks {theta.chunks}", file=sys.stderr)
    print(f"\nrun file: m={args.m}, depth 2, n={args.n}, 4 replicas, 20 trajectory / 10 Gram "
          "snapshots, weights stored; warm page cache\n")  # fmt: skip
    print("| mode | write | read (h5py, all datasets) | load_run | size |")
    print("|---|---:|---:|---:|---:|")
    base_w, base_r, base_s = rows[0][1], rows[0][2], rows[0][4]
    for mode, w, r, rl, size in rows:
        print(
            f"| {mode} | {w * 1e3:.1f} ms ({w / base_w:.2f}x) | {r * 1e3:.1f} ms "
            f"({r / base_r:.2f}x) | {'' if rl is None else f'{rl * 1e3:.1f} ms'} | "
            f"{size / 1e6:.3f} MB ({(size - base_s) / base_s * 100:+.2f} %) |"
        )
    # parquet: the trajectory table of the file
    _, traj = run_tables(os.path.join(tmp, "full.h5"), "bench")
    traj = pd.concat([traj] * 200, ignore_index=True)
    pq_rows = []
    for checks in (False, True):
        path = os.path.join(tmp, f"traj-{checks}.parquet")
        if checks:
            w = best(lambda p=path: write_table(traj, p), args.repeat)
            r = best(lambda p=path: read_table(p), args.repeat)
        else:
            w = best(lambda p=path: traj.to_parquet(p), args.repeat)
            r = best(lambda p=path: pd.read_parquet(p), args.repeat)
        pq_rows.append((checks, w, r, os.path.getsize(path)))
    print(f"\nparquet: trajectory table, {len(traj)} rows x {traj.shape[1]} columns\n")
    print("| page checksums | write | read | size |")
    print("|---|---:|---:|---:|")
    for checks, w, r, size in pq_rows:
        print(f"| {'yes (verified on read)' if checks else 'no'} | {w * 1e3:.1f} ms | "
              f"{r * 1e3:.1f} ms | {size / 1e6:.3f} MB |")  # fmt: skip


if __name__ == "__main__":
    main()
