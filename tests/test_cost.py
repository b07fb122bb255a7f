"""The cost model learns from the runs, GPU rates from a table, chained segments (issue 29)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from lazyphase.cells import ConfigError, validate_cell
from lazyphase.pipeline.budget import (
    GPU_EFFICIENCY,
    GPU_PEAKS,
    Budget,
    BudgetError,
    Throughput,
    budget_from_config,
    calibration_for,
    job_runtime_min,
    job_runtime_resource,
    job_seconds,
    job_segments,
    load_calibration,
    load_evidence,
    segments,
    split_batch,
)
from lazyphase.pipeline.evidence import (
    cell_fraction,
    cell_regime,
    fit_rate,
    fraction_for,
    job_benchmarks,
    makespan,
    run_costs,
    step_evidence,
)

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"
CPU = ("cpu", "float64")


def test_segments_arithmetic():
    # a 1 h limit leaves 3420 s per segment after the 180 s overhead
    assert segments(0.0, 3600.0) == 1
    assert segments(3420.0, 3600.0) == 1
    assert segments(3420.5, 3600.0) == 2
    assert segments(10 * 3420.0, 3600.0) == 10
    assert segments(100.0, 600.0, overhead_s=0.0) == 1
    with pytest.raises(ValueError, match="no time"):
        segments(10.0, 100.0)


def _cell(s=0.5, seeds=(0, 1), max_steps=1000, m=64):
    return validate_cell(dict(m=m, depth=1, n=16, d=4, n_test=8, s=s, max_steps=max_steps,
                              seeds=list(seeds)))  # fmt: skip


def test_a_long_cell_is_a_chain_of_segments():
    slow = {CPU: Throughput(1e-5, 0.0, 0.0, job_s=0.0, elem_ns=0.0)}
    cell = _cell(max_steps=1000)
    upper = job_seconds([cell], slow[CPU])
    one = Budget(runtime_min=60)
    assert job_runtime_min([cell], one, slow) > 60
    with pytest.raises(BudgetError, match=r"budget\.max_segments=1"):
        split_batch([cell], one, slow)
    chain = Budget(runtime_min=60, max_segments=100)
    assert split_batch([cell, cell], chain, slow) == [[0], [1]]
    expect = int(np.ceil(1.5 * upper / (3600 - 180)))
    assert job_segments([cell], chain, slow) == expect > 1
    assert job_runtime_resource([cell], chain, slow) == 60  # capped at the partition's limit
    fewer = expect - 1
    with pytest.raises(BudgetError, match=rf"{expect} segments but budget\.max_segments={fewer}"):
        split_batch([cell], Budget(runtime_min=60, max_segments=fewer), slow)


def _fake_run(path: Path, cell: dict, steps: list[int], seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    status = ["max_steps" if s >= cell["max_steps"] else "converged" for s in steps]
    with h5py.File(path, "w") as f:
        f.attrs["config_json"] = json.dumps(cell, sort_keys=True)
        f.attrs["status"] = np.array(status, dtype=h5py.string_dtype())
        f.attrs["seconds"] = seconds
        f.create_dataset("replicas/final_step", data=np.array(steps, dtype=np.int64))
        f.attrs["complete"] = True


def _fake_runs(root: Path, tp: Throughput, over: float, rate: float) -> None:
    """Three jobs: lazy replicas stopping at 100 and 300 (then 500 and 700) of 1000 steps,
    condensed ones at the cap; each job's training seconds are ``over`` × the model's overheads and ``rate`` × its
    matmul seconds at those steps."""
    lazy, cond = _cell(0.5), _cell(-0.5)
    free = replace(tp, gflops=math.inf, job_s=0.0)
    jobs = {"j1": (lazy, [100, 300]), "j2": (cond, [1000, 1000]), "j3": (lazy, [500, 700])}
    for job, (cell, steps) in jobs.items():
        kw = dict(fraction=[sum(steps) / 2000], batch_fraction=max(steps) / 1000)
        o = job_seconds([cell], free, **kw)
        secs = over * o + rate * (job_seconds([cell], replace(tp, job_s=0.0), **kw) - o)
        _fake_run(root / f"results/a/runs/{job}/c.h5", cell, steps, secs)
        bench = root / f"logs/benchmarks/train_cell/a/{job}.tsv"
        bench.parent.mkdir(parents=True, exist_ok=True)
        bench.write_text(f"s\th:m:s\tcpu_time\n{secs + 9.0}\t0:00:01\t{secs + 4.0}\n")


def test_step_fractions_and_rate_from_synthetic_run_files(tmp_path):
    tp = Throughput(0.1, 3e-4, 3e-5, job_s=5.0, elem_ns=10.0)  # matmuls ~ 1/2 of the model
    _fake_runs(tmp_path, tp, over=3.0, rate=1.5)
    costs = run_costs(tmp_path)
    assert list(costs["regime"]) == ["lazy", "condensed", "lazy"]
    assert list(costs["device"]) == ["cpu"] * 3  # no lazyphase_device attribute: the CPU
    ev = step_evidence(costs)
    lazy, cond = ev["experiment"]["a/lazy"], ev["regime"]["condensed"]
    assert (lazy["fraction"], lazy["capped_share"], lazy["stop_steps"]) == (0.4, 0.0, 400.0)
    assert (lazy["batch_capped_share"], lazy["batch_stop_steps"]) == (0.0, 500.0)
    assert (cond["fraction"], cond["capped_share"], cond["runs"]) == (1.0, 1.0, 1)
    # at another max_steps the stopped replicas keep their steps: 400 of 4000
    assert fraction_for(4000, lazy) == pytest.approx(0.1)
    assert fraction_for(4000, lazy, "batch_") == pytest.approx(0.125)
    assert fraction_for(100, lazy) == 1.0
    assert cell_fraction(_cell(0.25), "b", ev, 1.0) == (0.4, 0.5, 2)  # the regime's, any experiment
    assert cell_fraction(_cell(0.0), "a", ev, 0.7) == (0.7, 0.7, 0)  # no critical runs: default
    fitted, a, b = fit_rate(costs, job_benchmarks(tmp_path), tp)
    assert (a, b) == (pytest.approx(3.0, rel=1e-9), pytest.approx(1.5, rel=1e-9))
    assert fitted.gflops == pytest.approx(0.1 / 1.5) and fitted.step_s == pytest.approx(9e-4)
    assert fitted.job_s == pytest.approx(4.0)  # CPU seconds of a job less its training
    # runs whose matmuls are under 10 % of the model keep the rate, scale the overheads
    fast = replace(tp, gflops=1e3)
    _fake_runs(tmp_path / "fast", fast, over=2.0, rate=1.0)
    _, a, b = fit_rate(run_costs(tmp_path / "fast"), job_benchmarks(tmp_path / "fast"), fast)
    assert (a, b) == (pytest.approx(2.0, rel=1e-9), 1.0)


def test_regimes():
    assert [cell_regime(_cell(s)) for s in (0.5, 0.0, -0.25)] == ["lazy", "critical", "condensed"]
    chizat = validate_cell(dict(model="chizat", m=16, depth=1, n=8, d=2, seeds=[0]))
    assert cell_regime(chizat) == "chizat"


def test_makespan_longest_first():
    assert makespan([3, 3, 2, 2, 2], 2) == 7
    assert makespan([5, 1, 1], 1) == 7
    assert makespan([], 2) == 0.0


def test_gpu_table_replaces_the_flat_rate():
    b = budget_from_config({"budget": {"preset": "slurm", "gpu_model": "A100"}})
    cal = calibration_for(b, "/nonexistent/cal.json")
    assert cal[("cuda", "float64")].gflops == pytest.approx(19.5e3 * GPU_EFFICIENCY["float64"])
    assert "A100" in cal[("cuda", "float64")].source
    h200 = calibration_for(budget_from_config({"budget": {"preset": "gpu-workstation"}}), None)
    assert h200[("cuda", "float32")].gflops == pytest.approx(
        GPU_PEAKS["H200"][1] * 1e3 * GPU_EFFICIENCY["float32"]
    )
    with pytest.raises(ConfigError, match="gpu_model"):
        budget_from_config({"budget": {"preset": "slurm", "gpu_model": "GTX480"}})


def _plan(argv, capsys):
    from lazyphase.pipeline.cli import main

    assert main(["plan", *argv]) == 0
    return capsys.readouterr().out


def test_calibrated_expected_is_below_the_upper_bound(tmp_path, capsys):
    runs = tmp_path / "runs"
    _fake_runs(runs, Throughput(10.0, 3e-4, 3e-5), over=1.0, rate=1.0)
    cal = tmp_path / "cal.json"
    from lazyphase.pipeline.cli import main

    assert main(["calibrate", "--from-runs", str(runs), "--out", str(cal)]) == 0
    assert "lazy: 2 runs, 4 replicas, 0% at max_steps" in capsys.readouterr().out
    assert load_evidence(cal)["runs"] == 3
    exps = {name: dict(grid=dict(m=[64], s=[s]), seeds=[0, 1], figures=["theta_lazy_rd"],
                       fixed=dict(depth=1, n=16, d=4, n_test=8, max_steps=1000))
            for name, s in (("a", 0.5), ("b", -0.5))}  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"experiments": exps}))
    jobs = tmp_path / "jobs.csv"
    out = _plan(["--configfile", str(config), "--calibration", str(cal), "--jobs", str(jobs)],
                capsys)  # fmt: skip
    assert f"from 3 runs in {runs}" in out
    table = pd.read_csv(jobs).set_index("experiment")
    assert list(table["evidence_runs"]) == [2, 1]
    # lazy: 0.4 of the steps, condensed: all; expected < upper only where runs stop early
    lazy, cond = table.loc["a"], table.loc["b"]
    tp = load_calibration(cal)[CPU]  # fitted: job_s 4 s (CPU seconds less training)
    assert tp.job_s == pytest.approx(4.0)
    expect = job_seconds([_cell(0.5)], tp, fraction=0.4, batch_fraction=0.5)
    assert 3600 * lazy["expected_h"] == pytest.approx(expect)
    assert 3600 * lazy["expected_h"] - tp.job_s < 0.6 * (3600 * lazy["upper_h"] - tp.job_s)
    assert cond["expected_h"] == pytest.approx(cond["upper_h"])
    out = _plan(["--configfile", str(config), "--calibration", str(cal), "--against", str(runs),
                 "--cores", "2"], capsys)  # fmt: skip
    assert "training wall on 2 core(s)" in out


def test_paper_preset_on_cpu_nodes_is_a_plan_of_chained_segments(tmp_path, capsys):
    jobs = tmp_path / "jobs.csv"
    out = _plan(["--configfile", str(PAPER), "--budget", "{preset: slurm-cpu}",
                 "--calibration", str(tmp_path / "none.json"), "--jobs", str(jobs)], capsys)  # fmt: skip
    table = pd.read_csv(jobs)
    trained = table.dropna(subset=["upper_h"])
    assert trained["runtime_min"].max() <= 1440 and trained["mem_mb"].max() <= 64000
    chains = trained[trained["segments"] > 1]
    assert len(chains) > 0 and trained["segments"].max() <= 30
    assert (chains["runtime_min"] == 1440).all()
    # a chain's segments carry its upper bound x safety within 1440 - 3 min each
    assert (1.5 * 3600 * chains["upper_h"] <= chains["segments"] * (1440 - 3) * 60).all()
    total = out.splitlines()[-1].split()
    assert total[:2] == ["total", str(len(table))] and int(total[3]) == trained["segments"].sum()
    assert float(total[5]) == pytest.approx(trained["cpu_h"].sum(), abs=0.01)
    assert "segments:" in out and "budget.max_segments=30" in out


def test_gpu_probe_is_the_step_rate_over_the_matmul_peak(monkeypatch, capsys):
    from lazyphase.pipeline import calibration
    from lazyphase.pipeline.cli import main

    monkeypatch.setattr(calibration, "measure_throughput",
                        lambda dev, dtype, scale=1.0: Throughput(7.0, 0.0, 0.0))  # fmt: skip
    monkeypatch.setattr(calibration, "measure_matmul_gflops", lambda dev, dtype: 20.0)
    assert calibration.gpu_probe("cpu", "float64")["efficiency"] == pytest.approx(0.35)
    assert main(["calibrate", "--gpu-probe", "--dtype", "float64"]) == 0
    assert f"efficiency 0.35 (table: {GPU_EFFICIENCY['float64']:.2f})" in capsys.readouterr().out
