"""The cost model learns from the runs: step fractions per regime and the machine's rate, read
from finished run files (``lazyphase calibrate --from-runs``, ``lazyphase plan --against``;
docs/scale.md).

A replica stops when it converges, early-stops or diverges, else at ``max_steps``. On the lazy
side (``s > 0``) replicas converge after a few hundred steps; on the condensed side (``s < 0``)
they mostly run to the cap. :func:`step_evidence` measures, per experiment and *regime* (the
sign of ``s``, :func:`cell_regime`), the share of replicas that hit the cap and the mean steps of
those that stopped; :func:`fraction_for` turns that into the expected share of ``max_steps`` of a
cell, also one with another ``max_steps``. :func:`fit_rate` scales a throughput so that the cost
model, run at the steps the replicas actually took, gives the measured training seconds.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lazyphase.pipeline.budget import Throughput, job_seconds
from lazyphase.store.runs import read_run_cost

#: The regimes of :func:`cell_regime`.
REGIMES = ("lazy", "critical", "condensed", "chizat")


def cell_regime(cell: Mapping[str, Any]) -> str:
    """``lazy`` (``s > 0``), ``critical`` (``s = 0``) or ``condensed`` (``s < 0``); ``chizat``
    for Chizat's model, whose ``s`` is set by its multiplier (known only after the scales)."""
    if cell.get("model", "conventions") == "chizat":
        return "chizat"
    s = float(cell["s"])
    return "lazy" if s > 0 else "condensed" if s < 0 else "critical"


def run_costs(directory: str | Path) -> pd.DataFrame:
    """One row per run file under ``directory/results/<experiment>/runs/<job>/``: ``experiment,
    job, file, regime, replicas, max_steps, steps`` (sum over replicas), ``steps_max, capped``
    (replicas at ``max_steps``), ``stopped_steps`` (steps of the others), ``seconds`` (training
    seconds of its batch), ``threads``, ``params`` (the cell), ``device`` (``cpu`` or
    ``cuda``)."""
    rows = []
    for path in sorted(Path(directory).glob("results/*/runs/*/*.h5")):
        rc = read_run_cost(str(path))
        capped = rc.steps >= rc.max_steps
        rows.append(
            dict(experiment=path.parts[-4], job=path.parts[-2], file=str(path),
                 regime=cell_regime(rc.cell), replicas=rc.replicas, max_steps=rc.max_steps,
                 steps=int(rc.steps.sum()), steps_max=int(rc.steps.max()),
                 capped=int(capped.sum()), stopped_steps=int(rc.steps[~capped].sum()),
                 seconds=rc.seconds, threads=rc.threads, params=rc.cell,
                 device="cpu" if rc.device == "cpu" else "cuda")
        )  # fmt: skip
    return pd.DataFrame(rows)


def job_benchmarks(directory: str | Path) -> pd.DataFrame:
    """Per training job: ``experiment, job, wall_s, cpu_s`` from Snakemake's benchmark files
    ``logs/benchmarks/train_cell/<experiment>/<job>.tsv`` (the whole job: start-up, data,
    training, writing)."""
    rows = []
    for path in sorted(Path(directory).glob("logs/benchmarks/train_cell/*/*.tsv")):
        t = pd.read_csv(path, sep="\t")
        rows.append(dict(experiment=path.parent.name, job=path.stem,
                         wall_s=float(t["s"].iloc[-1]), cpu_s=float(t["cpu_time"].iloc[-1])))  # fmt: skip
    return pd.DataFrame(rows, columns=["experiment", "job", "wall_s", "cpu_s"])


def _entry(f: pd.DataFrame) -> dict[str, float]:
    stopped = int(f["replicas"].sum() - f["capped"].sum())
    ran_on = f["steps_max"] < f["max_steps"]  # files whose last replica stopped before the cap
    return dict(
        runs=len(f), replicas=int(f["replicas"].sum()),
        capped_share=float(f["capped"].sum() / f["replicas"].sum()),
        stop_steps=float(f["stopped_steps"].sum() / stopped) if stopped else 0.0,
        fraction=float(f["steps"].sum() / (f["replicas"] * f["max_steps"]).sum()),
        batch_capped_share=float(1.0 - ran_on.mean()),
        batch_stop_steps=float(f.loc[ran_on, "steps_max"].mean()) if ran_on.any() else 0.0,
    )  # fmt: skip


def step_evidence(costs: pd.DataFrame) -> dict[str, dict[str, dict[str, float]]]:
    """The step evidence of :func:`run_costs`: ``{"experiment": {"<experiment>/<regime>":
    entry}, "regime": {"<regime>": entry}}``, each entry ``runs, replicas, capped_share,
    stop_steps`` (mean steps of the replicas that stopped before the cap), ``fraction``
    (steps taken / (replicas × max_steps)) and the same for the last replica of each file
    (``batch_capped_share, batch_stop_steps``: how long a batch of the cell steps)."""
    by_exp = costs.groupby(["experiment", "regime"])
    return {
        "experiment": {f"{e}/{r}": _entry(f) for (e, r), f in by_exp},
        "regime": {r: _entry(f) for r, f in costs.groupby("regime")},
    }


def fraction_for(max_steps: int, entry: Mapping[str, float], of: str = "") -> float:
    """The expected share of ``max_steps`` of a replica (``of="batch_"``: of a cell's last
    replica): ``capped_share`` run to the cap, the others ``min(stop_steps, max_steps)`` steps.
    At the measured ``max_steps`` it is the measured fraction."""
    p = entry[f"{of}capped_share"]
    return p + (1.0 - p) * min(entry[f"{of}stop_steps"], max_steps) / max_steps


def cell_fraction(
    cell: Mapping[str, Any], experiment: str, evidence: Mapping[str, Any] | None, default: float
) -> tuple[float, float, int]:
    """``(fraction, batch_fraction, runs)`` of a cell (:func:`fraction_for`): from the runs of
    its experiment and regime, else of its regime in any experiment, else ``(default, default,
    0)`` (the configuration's ``expected_step_fraction``)."""
    if evidence:
        regime = cell_regime(cell)
        for entry in (evidence["experiment"].get(f"{experiment}/{regime}"),
                      evidence["regime"].get(regime)):  # fmt: skip
            if entry:
                steps = int(cell["max_steps"])
                return (
                    fraction_for(steps, entry),
                    fraction_for(steps, entry, "batch_"),
                    int(entry["runs"]),
                )
    return default, default, 0


def _model_parts(costs: pd.DataFrame, tp: Throughput) -> pd.DataFrame:
    """Per job (one group of :func:`run_costs` rows): the cost model's training seconds at the
    steps its replicas took, split into ``overhead`` (per step, per replica-step, activations)
    and ``flops`` (the matmuls at ``tp.gflops``), with the measured ``seconds``."""

    def one(f: pd.DataFrame) -> pd.Series:
        fracs = list(f["steps"] / (f["replicas"] * f["max_steps"]))
        batch = float((f["steps_max"] / f["max_steps"]).max())
        cells = list(f["params"])
        free = replace(tp, gflops=math.inf, job_s=0.0)
        over = job_seconds(cells, free, fraction=fracs, batch_fraction=batch)
        total = job_seconds(cells, replace(tp, job_s=0.0), fraction=fracs, batch_fraction=batch)
        return pd.Series(dict(overhead=over, flops=total - over, seconds=f["seconds"].max()))

    return costs.groupby(["experiment", "job"]).apply(one, include_groups=False)


def fit_rate(
    costs: pd.DataFrame, bench: pd.DataFrame, tp: Throughput
) -> tuple[Throughput, float, float]:
    """``(throughput, overhead_factor, rate_factor)``: ``tp`` with its overheads multiplied by
    ``a`` and its rate divided by ``b``, from the least-squares fit (relative errors) of each
    job's measured seconds by ``job_s + a · overhead + b · flops`` (:func:`_model_parts`).
    The measured seconds are the jobs' CPU seconds from ``bench`` where it has them (a machine
    shared with other work stretches wall time, not CPU time), else the run files' training
    seconds (then ``job_s`` is kept). ``b`` = 1 when the matmuls are under 10 % of the model
    (the runs cannot measure the rate); a fit with a coefficient ≤ 0 keeps ``a = b = 1`` and
    takes ``job_s`` as the median of what the model leaves of the measured seconds."""
    parts = _model_parts(costs, tp)
    cpu = bench.set_index(["experiment", "job"])["cpu_s"] if len(bench) else pd.Series()
    with_cpu = len(cpu) > 0 and parts.index.isin(cpu.index).all()
    y = (cpu.reindex(parts.index) if with_cpu else parts["seconds"]).to_numpy(float)
    over, flops = parts["overhead"].to_numpy(float), parts["flops"].to_numpy(float)
    rate_known = flops.sum() >= 0.1 * (over + flops).sum()
    cols = [over] + ([flops] if rate_known else []) + ([np.ones_like(y)] if with_cpu else [])
    target = y if rate_known else y - flops
    coef, *_ = np.linalg.lstsq(np.stack(cols, 1) / y[:, None], target / y, rcond=None)
    if len(parts) >= len(cols) and (coef > 0).all():
        a, b = float(coef[0]), float(coef[1]) if rate_known else 1.0
        job_s = float(coef[-1]) if with_cpu else tp.job_s
    else:  # the runs do not determine the factors (too short, or too noisy): keep the rate
        a = b = 1.0
        rest = y - over - flops
        job_s = float(max(np.median(rest), 0.0)) if with_cpu else tp.job_s
    out = replace(tp, gflops=tp.gflops / b, step_s=tp.step_s * a, replica_s=tp.replica_s * a,
                  elem_ns=tp.elem_ns * a, job_s=job_s)  # fmt: skip
    return out, a, b


def makespan(seconds: Sequence[float], cores: int) -> float:
    """Wall seconds of independent jobs on ``cores`` one-thread workers, longest first, each to
    the first free worker (Snakemake schedules other jobs too; this is the training part)."""
    free = [0.0] * max(cores, 1)
    for s in sorted(seconds, reverse=True):
        heapq.heappush(free, heapq.heappop(free) + s)
    return max(free) if seconds else 0.0


def compare_runs(jobs: pd.DataFrame, bench: pd.DataFrame, cores: int) -> pd.DataFrame:
    """Per experiment (and a ``total`` row): the plan's expected seconds (``estimate_s``; rows
    of :func:`lazyphase.pipeline.plan.plan_jobs`) against the measured CPU and wall seconds of
    the same jobs, their ratios, and the training makespan on ``cores`` (estimate, measured)."""
    j = jobs.dropna(subset=["expected_h"]).merge(bench, on=["experiment", "job"], how="inner")
    j["estimate_s"] = 3600.0 * j["expected_h"]
    rows = [dict(experiment=e, jobs=len(f), estimate_s=f["estimate_s"].sum(),
                 cpu_s=f["cpu_s"].sum(), wall_s=f["wall_s"].sum())
            for e, f in j.groupby("experiment", sort=False)]  # fmt: skip
    rows.append(dict(experiment="total", jobs=len(j), estimate_s=j["estimate_s"].sum(),
                     cpu_s=j["cpu_s"].sum(), wall_s=j["wall_s"].sum()))  # fmt: skip
    out = pd.DataFrame(rows)
    out["estimate/cpu"] = out["estimate_s"] / out["cpu_s"]
    out["estimate/wall"] = out["estimate_s"] / out["wall_s"]
    out.attrs["makespan"] = (makespan(list(j["estimate_s"]), cores),
                             makespan(list(j["wall_s"]), cores))  # fmt: skip
    return out


def format_comparison(table: pd.DataFrame, cores: int) -> str:
    """:func:`compare_runs` as text, with the makespans on ``cores``."""
    lines = [f"{'experiment':<20}{'jobs':>5}{'estimate s':>12}{'CPU s':>10}{'wall s':>10}"
             f"{'est/CPU':>9}{'est/wall':>9}"]  # fmt: skip
    for r in table.to_dict("records"):
        lines.append(f"{r['experiment']:<20}{r['jobs']:>5}{r['estimate_s']:>12.1f}"
                     f"{r['cpu_s']:>10.1f}{r['wall_s']:>10.1f}{r['estimate/cpu']:>9.2f}"
                     f"{r['estimate/wall']:>9.2f}")  # fmt: skip
    est, wall = table.attrs.get("makespan", (math.nan, math.nan))
    lines.append(f"training wall on {cores} core(s): estimate {est:.1f} s, measured {wall:.1f} s "
                 f"(ratio {est / wall if wall else math.nan:.2f})")  # fmt: skip
    return "\n".join(lines)


def summarize_evidence(evidence: Mapping[str, Any]) -> list[str]:
    """One line per regime: the runs, replicas, capped share and fraction."""
    return [
        f"{r}: {int(e['runs'])} runs, {int(e['replicas'])} replicas, "
        f"{100 * e['capped_share']:.0f}% at max_steps, the others stop after "
        f"{e['stop_steps']:.0f} steps; fraction {e['fraction']:.3f}"
        for r, e in evidence["regime"].items()
    ] + (
        [f"the model's overheads x {evidence['overhead_factor']:.2f}, its rate / "
         f"{evidence['rate_factor']:.2f}"] if "rate_factor" in evidence else []
    )  # fmt: skip
