"""The plan of a configuration under a job budget: jobs, replicas, memory and hours per experiment
(``lazyphase plan``; docs/scale.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from lazyphase.pipeline.budget import (
    Budget,
    Throughput,
    chunk_replicas,
    job_device_mem_mb,
    job_mem_mb,
    job_runtime_resource,
    job_seconds,
    job_segments,
    load_calibration,
)
from lazyphase.pipeline.evidence import cell_fraction
from lazyphase.pipeline.grid import expand_config


def plan_jobs(
    config: Mapping[str, Any],
    budget: Budget,
    calibration: Mapping[tuple[str, str], Throughput] | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per training job: ``experiment, job, cells, replicas, chunk, mem_mb,
    device_mem_mb, runtime_min, segments`` (the resources; ``segments`` > 1: a chain of jobs
    of ``runtime_min`` each, resuming from checkpoints) and ``upper_h, expected_h`` (estimated
    hours on the budget's device: every replica to ``max_steps``, and each cell's steps scaled
    by the fraction measured on earlier runs of its experiment and regime, ``evidence`` of
    :func:`lazyphase.pipeline.evidence.step_evidence`, else by the experiment's
    ``expected_step_fraction``); ``evidence_runs``: the runs that fraction rests on (0:
    none)."""
    cal = calibration if calibration is not None else load_calibration()
    cells = expand_config(config, budget=budget, calibration=cal)
    rows = []
    for (exp, job), frame in cells.groupby(["experiment", "job"], sort=False):
        group = list(frame["params"])
        kind = frame["kind"].iloc[0]
        reps = sum(len(c["seeds"]) for c in group)
        if kind == "gram_concentration":
            rows.append(dict(experiment=exp, kind=kind, job=job, cells=len(group), replicas=reps))
            continue
        tp = cal[(budget.device, group[0]["dtype"])]
        chunk = chunk_replicas(group, budget)
        default = float(config["experiments"][exp].get("expected_step_fraction", 1.0))
        measured = [cell_fraction(c, exp, evidence, default) for c in group]
        frac = [f for f, _, _ in measured]
        batch = max(b for _, b, _ in measured)
        other = "cpu" if budget.gpu else "cuda"  # the same job on the other kind of device
        tp_other = cal[(other, group[0]["dtype"])]
        hours = {budget.device: job_seconds(group, tp, chunk=chunk, fraction=frac, batch_fraction=batch) / 3600}
        hours[other] = job_seconds(group, tp_other, fraction=frac, batch_fraction=batch) / 3600
        rows.append(
            dict(
                experiment=exp, kind=kind, job=job, cells=len(group), replicas=reps, chunk=chunk,
                mem_mb=job_mem_mb(group, budget), device_mem_mb=job_device_mem_mb(group, budget),
                runtime_min=job_runtime_resource(group, budget, cal),
                segments=job_segments(group, budget, cal),
                evidence_runs=max(n for _, _, n in measured),
                upper_h=job_seconds(group, tp, chunk=chunk) / 3600,
                expected_h=hours[budget.device],
                cpu_h=hours["cpu"], gpu_h=hours["cuda"],
            )
        )  # fmt: skip
    return pd.DataFrame(rows)


def plan_summary(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per experiment: jobs, replicas, peak job memory (host, device), the longest runtime
    resource, segments (sum over jobs, and the most of one job), hours (upper bound and
    expected), the runs the expected cost rests on and the largest job (by upper bound)."""
    out = []
    for exp, f in jobs.groupby("experiment", sort=False):
        row: dict[str, Any] = dict(experiment=exp, jobs=len(f), replicas=int(f["replicas"].sum()))
        if f["kind"].iloc[0] != "gram_concentration":
            big = f.loc[f["upper_h"].idxmax()]
            chain = f", {int(big['segments'])} segments" if big["segments"] > 1 else ""
            row.update(
                peak_mem_mb=int(f["mem_mb"].max()),
                peak_device_mb=int(f["device_mem_mb"].max()),
                max_runtime_min=int(f["runtime_min"].max()),
                segments=int(f["segments"].sum()),
                max_segments=int(f["segments"].max()),
                upper_h=float(f["upper_h"].sum()),
                expected_h=float(f["expected_h"].sum()),
                cpu_h=float(f["cpu_h"].sum()),
                gpu_h=float(f["gpu_h"].sum()),
                evidence_runs=int(f["evidence_runs"].max()),
                largest=f"{big['job']} ({int(big['replicas'])} replicas, {big['upper_h']:.2f} h"
                f"{chain})",
            )
        out.append(row)
    return pd.DataFrame(out)


def _head(summary: pd.DataFrame, budget: Budget, source: str, evidence: str | None) -> str:
    trained = summary.dropna(subset=["upper_h"])
    chains = trained[trained["max_segments"] > 1]
    seg = (
        f"segments: {int(trained['segments'].sum())} of at most {budget.runtime_min} min for "
        f"{int(trained['jobs'].sum())} jobs; {len(chains)} experiment(s) chain jobs (at most "
        f"{int(trained['max_segments'].max())} segments, budget.max_segments="
        f"{budget.max_segments}), each resuming from the previous checkpoint\n"
        if len(chains) else ""
    )  # fmt: skip
    ev = (
        f"expected: step fractions {evidence}"
        if evidence
        else "expected: expected_step_fraction of each experiment (no step evidence: "
        "lazyphase calibrate --from-runs)"
    )
    return (
        f"budget: mem_mb={budget.mem_mb} runtime_min={budget.runtime_min} device={budget.device}"
        + (f" device_mem_mb={budget.device_mem_mb} gpu_model={budget.gpu_model}" if budget.gpu
           else "")
        + f"\nthroughput: {source}\n{ev}\n{seg}"
    )  # fmt: skip


def format_plan(
    summary: pd.DataFrame, budget: Budget, source: str, evidence: str | None = None
) -> str:
    """The plan as a text table. ``upper`` and ``exp.`` are in hours of the budget's device
    (CPU-h on ``cpu``, GPU-h on ``cuda``), ``CPU-h`` and ``GPU-h`` the expected hours on either
    device; ``segs``: segments (jobs, or links of chained jobs); ``runs``: the earlier runs the
    expected cost rests on (0: ``expected_step_fraction``). ``evidence`` names them."""
    unit = "GPU-h" if budget.gpu else "CPU-h"
    cols = f"{'experiment':<20}{'jobs':>5}{'replicas':>9}{'peak MB':>8}{'dev MB':>7}{'max min':>8}"
    cols += f"{'segs':>6}{'upper ' + unit:>12}{'exp. CPU-h':>11}{'exp. GPU-h':>11}{'runs':>6}"
    lines = [_head(summary, budget, source, evidence) + cols + "  largest job"]
    tot = {"segments": 0, "upper_h": 0.0, "cpu_h": 0.0, "gpu_h": 0.0}
    for r in summary.to_dict("records"):
        if pd.isna(r.get("upper_h", float("nan"))):
            lines.append(
                f"{r['experiment']:<20}{r['jobs']:>5}{r['replicas']:>9}   (initialization only)"
            )
            continue
        for k in tot:
            tot[k] += r[k]
        lines.append(
            f"{r['experiment']:<20}{r['jobs']:>5}{r['replicas']:>9}{int(r['peak_mem_mb']):>8}"
            f"{int(r['peak_device_mb']):>7}{int(r['max_runtime_min']):>8}{int(r['segments']):>6}"
            f"{r['upper_h']:>12.2f}{r['cpu_h']:>11.2f}{r['gpu_h']:>11.2f}"
            f"{int(r['evidence_runs']):>6}  {r['largest']}"
        )
    lines.append(
        f"{'total':<20}{int(summary['jobs'].sum()):>5}{int(summary['replicas'].sum()):>9}"
        f"{'':>23}{int(tot['segments']):>6}{tot['upper_h']:>12.2f}{tot['cpu_h']:>11.2f}"
        f"{tot['gpu_h']:>11.2f}"
    )
    return "\n".join(lines)
