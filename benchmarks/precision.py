"""Precision targeting against a fixed seed count, at equal interval width (issue 29 item 1).

    nice -n 10 .venv/bin/python benchmarks/precision.py [--targets 0.2 0.21 0.25 0.3 0.4] [--out FILE]

A theta_lazy grid (tanh and relu, lecun, L = 1, m = 16 … 256, s = −0.5 … 1 in steps of 0.25) is trained once with
``--pool`` seeds per cell (``train_cells``, one thread). Both strategies are then replayed on
that pool, so they see the same replicas:

* fixed: the smallest seed count K (the same for every cell) at which every regime-exponent
  interval (every s and layer, :func:`lazyphase.pipeline.precision.intervals`) is at most the
  target wide; replicas = K × cells;
* targeted: every cell group starts at 3 seeds and grows by :func:`~lazyphase.pipeline.precision.
  next_round` (×1.5 per round, at most ``--pool``) until its interval meets the target; replicas =
  Σ over groups of its seeds × its widths.

Printed (and written with ``--out``): per target, the replicas of each and the widest interval
each reaches.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import pandas as pd  # noqa: E402

from lazyphase.pipeline import precision  # noqa: E402
from lazyphase.pipeline.grid import expand_config  # noqa: E402
from lazyphase.pipeline.jobs import train_cells  # noqa: E402
from lazyphase.store.tables import collect  # noqa: E402

KEYS = list(precision.GROUP_KEYS["exponent"])


def grid(pool: int) -> dict:
    fixed = dict(n=8, d=4, n_test=16, max_steps=300, n_snapshots=5, n_gram_snapshots=0)
    return {"experiments": {"theta_lazy": {
        "grid": {"m": [16, 32, 64, 128, 256], "s": [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0],
                 "scheme": ["lecun"], "activation": ["tanh", "relu"], "depth": [1]},
        "seeds": list(range(pool)), "fixed": fixed, "figures": ["theta_lazy_rd"]}}}  # fmt: skip


def train_pool(pool: int, folder: str) -> tuple[pd.DataFrame, float]:
    """Every cell of :func:`grid` with ``pool`` seeds: the runs table and the CPU seconds."""
    cells = expand_config(grid(pool))
    paths, cpu = [], time.process_time()
    for job, frame in cells.groupby("job"):
        outs = [os.path.join(folder, job, f"{c}.h5") for c in frame["cell"]]
        train_cells(list(frame["params"]), outs, threads=1)
        paths += outs
    return collect(paths, "theta_lazy")[0], time.process_time() - cpu


def widest(runs: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    return precision.cell_groups(precision.intervals("train", "exponent", runs, n_boot=n_boot),
                                 "exponent")  # fmt: skip


def fixed(runs: pd.DataFrame, target: float, pool: int, n_boot: int) -> tuple[int, float]:
    """The smallest common seed count that meets ``target`` everywhere (pool if none) and the
    widest interval there."""
    for k in range(3, pool + 1):
        w = widest(runs[runs["seed"] < k], n_boot)["ci_width"].max()
        if w <= target:
            return k, float(w)
    return pool, float(w)


def targeted(runs: pd.DataFrame, target: float, pool: int, n_boot: int) -> tuple[dict, float]:
    """The rounds of :func:`precision.next_round` replayed on the pool: seeds per group and
    the widest final interval."""
    groups = runs[KEYS].drop_duplicates()
    seeds = {tuple(g): 3 for g in groups.itertuples(index=False)}
    while True:
        key = pd.Series(list(zip(*(runs[k] for k in KEYS))), index=runs.index)
        sub = runs[runs["seed"] < key.map(seeds)]
        iv = widest(sub, n_boot)
        used = [seeds[tuple(r)] for r in iv[KEYS].itertuples(index=False)]
        dec = precision.next_round(iv, used, target=target, max_seeds=pool)
        if (dec["stop"] != "").all():
            return seeds, float(iv["ci_width"].max())
        for r in dec.itertuples(index=False):
            seeds[tuple(getattr(r, k) for k in KEYS)] = int(r.n_seeds_next)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=12)
    ap.add_argument("--targets", type=float, nargs="+", default=[0.2, 0.21, 0.25, 0.3, 0.4])
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs, cpu = train_pool(args.pool, tmp)
    widths = runs.groupby(KEYS)["m"].nunique()
    n_cells = int(widths.sum())
    print(f"pool: {n_cells} cells x {args.pool} seeds trained in {cpu:.0f} CPU-s")
    rows = []
    for t in args.targets:
        k, w_fixed = fixed(runs, t, args.pool, args.n_boot)
        seeds, w_tgt = targeted(runs, t, args.pool, args.n_boot)
        reps = sum(n * int(widths[g]) for g, n in seeds.items())
        rows.append(dict(target=t, fixed_seeds=k, fixed_replicas=k * n_cells, fixed_widest=w_fixed,
                         targeted_replicas=reps, targeted_widest=w_tgt,
                         targeted_seeds=sorted(seeds.values())))  # fmt: skip
        print(f"target {t}: fixed {k} seeds = {k * n_cells} replicas (widest {w_fixed:.3f}); "
              f"targeted {reps} replicas (widest {w_tgt:.3f}), seeds per group "
              f"{sorted(seeds.values())}")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
