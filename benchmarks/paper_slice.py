"""A measured slice of the paper preset at widths the default catalog never trains (issue 14).

    nice -n 10 .venv/bin/python benchmarks/paper_slice.py [--out benchmarks/paper_slice.json]

theta_lazy at widths the default never trains: L = 1 at m = 2048 and 4096 (the default stops at
1024) and L = 2 at m = 1024 (the default stops at 512); tanh, lecun, s = 0.5 and 1.0, two seeds,
the paper's step budget (max_steps = 20000, tol_rel = 1e-4). Each (m, depth) is one job, trained
as the pipeline trains it (``train_cells``, one thread). Printed and written: the plan's estimate
(upper bound and, with the measured fraction of max_steps, the expected cost) against the
measured wall and CPU time; the replicas' stop steps; the final RD per layer and, for L = 1, its
slope in log m between the two widths.
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

import numpy as np  # noqa: E402

from lazyphase.pipeline.budget import (  # noqa: E402
    DEFAULT_BUDGET,
    calibration_path,
    job_seconds,
    load_calibration,
)
from lazyphase.pipeline.grid import expand_config  # noqa: E402
from lazyphase.pipeline.jobs import train_cells  # noqa: E402
from lazyphase.store.runs import load_run  # noqa: E402

SLICE = {
    "experiments": {
        "theta_lazy": {
            "grid": {"m": [1024, 2048, 4096], "s": [0.5, 1.0], "scheme": ["lecun"],
                     "activation": ["tanh"], "depth": [1, 2]},
            "exclude": [{"depth": 1, "m": 1024}, {"depth": 2, "m": 2048}, {"depth": 2, "m": 4096}],
            "seeds": [0, 1],
            "fixed": {"n": 32, "d": 8, "n_test": 128, "max_steps": 20000, "tol_rel": 1.0e-4},
            "batch_over": ["s", "scheme"],
            "figures": ["theta_lazy_rd"],
        }
    }
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "paper_slice.json"))
    ap.add_argument("--widths", type=int, nargs="+", default=None)
    args = ap.parse_args()
    cfg = json.loads(json.dumps(SLICE))
    if args.widths:
        cfg["experiments"]["theta_lazy"]["grid"]["m"] = args.widths
    cal = load_calibration()
    tp = cal[("cpu", "float64")]
    cells = expand_config(cfg, budget=DEFAULT_BUDGET, calibration=cal)
    rows = []
    tmp = tempfile.mkdtemp(prefix="slice-")
    for job, frame in cells.groupby("job", sort=False):
        group = list(frame["params"])
        outs = [os.path.join(tmp, f"{job}-{c}.h5") for c in frame["cell"]]
        upper = job_seconds(group, tp)
        print(f"{job}: {sum(len(c['seeds']) for c in group)} replicas, estimate (upper) "
              f"{upper:.0f} s", flush=True)  # fmt: skip
        w0, c0 = time.perf_counter(), time.process_time()
        train_cells(group, outs, threads=1, log_every=60)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        steps, rd = [], []
        for c, o in zip(group, outs):
            run = load_run(o, gram=False)
            steps += [int(x) for x in run["replicas/final_step"]]
            rd.append(dict(s=c["s"], m=c["m"], depth=c["depth"], status=list(run.attrs["status"]),
                           final_step=[int(x) for x in run["replicas/final_step"]],
                           rd_final=run["trajectory/rd"][:, -1, :].tolist()))  # fmt: skip
        frac = float(np.sum(steps)) / (len(steps) * group[0]["max_steps"])
        expected = job_seconds(group, tp, fraction=frac)
        rows.append(dict(job=job, m=group[0]["m"], depth=group[0]["depth"], replicas=len(steps), upper_s=upper,
                         step_fraction=frac, expected_s=expected, wall_s=wall, cpu_s=cpu,
                         ratio_wall=wall / expected, ratio_cpu=cpu / expected, cells=rd))  # fmt: skip
        print(f"  measured wall {wall:.0f} s, CPU {cpu:.0f} s; fraction of max_steps {frac:.3f}; "
              f"expected {expected:.0f} s -> wall/expected {wall / expected:.2f}, "
              f"CPU/expected {cpu / expected:.2f}", flush=True)  # fmt: skip
    # slope of log RD(layer) in log m between the two widths, per s (mean over seeds)
    slopes = {}
    one = [r for r in rows if r["cells"][0].get("depth", 1) == 1]
    if len(one) >= 2:
        lo, hi = one[0], one[-1]
        for a in lo["cells"]:
            b = next(x for x in hi["cells"] if x["s"] == a["s"])
            ra = np.exp(np.mean(np.log(a["rd_final"]), axis=0))
            rb = np.exp(np.mean(np.log(b["rd_final"]), axis=0))
            slopes[str(a["s"])] = (np.log(rb / ra) / np.log(hi["m"] / lo["m"])).tolist()
        for s, sl in slopes.items():
            print(
                f"s={s}: slope of log RD per layer (W1, a) in log m, L = 1: "
                + ", ".join(f"{x:.3f}" for x in sl)
            )
    meta = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                calibration=str(calibration_path()), throughput=tp.__dict__, uname=os.uname()[1],
                loadavg=os.getloadavg())  # fmt: skip
    with open(args.out, "w") as fh:
        json.dump(dict(meta=meta, jobs=rows, slopes=slopes), fh, indent=1)
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
