"""Job budgets, chunked training and the cost model (issue 14, docs/scale.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import dataset_bytes

from lazyphase.cells import validate_cell
from lazyphase.pipeline.budget import (
    DEFAULT_THROUGHPUT,
    PRESETS,
    Budget,
    BudgetError,
    Throughput,
    budget_block,
    budget_from_config,
    chunk_replicas,
    job_device_mem_mb,
    job_mem_mb,
    job_runtime_min,
    job_seconds,
    load_calibration,
    n_params,
    save_calibration,
    step_flops,
)
from lazyphase.pipeline.grid import expand_config
from lazyphase.pipeline.jobs import train_cells
from lazyphase.store.tables import collect

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"


def small_cells():
    # three cells of one batch that stop at different steps, one with safeguard events
    common = dict(m=32, depth=2, seeds=[0, 1, 2], max_steps=200, n=16, d=4, n_test=16,
                  tol_rel=1e-3, n_gram_snapshots=2, weight_snapshots=True, n_snapshots=10)  # fmt: skip
    return [
        validate_cell({**common, "s": s, "lr_c": lr_c})
        for s, lr_c in ((0.0, 1.0), (1.0, 1.0), (0.5, 50.0))
    ]


def test_chunked_training_writes_the_same_run_files(tmp_path):
    cells = small_cells()
    ref = None
    for chunk in (None, 1, 2, 4):
        outs = [str(tmp_path / f"c{chunk}_{i}.h5") for i in range(len(cells))]
        train_cells(cells, outs, chunk=chunk)
        got = [dataset_bytes(o) for o in outs]
        if ref is None:
            ref = got
            continue
        for a, b in zip(ref, got):
            assert set(a) == set(b)
            assert [k for k in a if a[k] != b[k]] == [], f"chunk={chunk}"
    # the cells stop at different steps and one has safeguard events: the merge was exercised
    import h5py

    with h5py.File(tmp_path / "cNone_2.h5") as f:
        assert len(f["events"]) > 0
    with h5py.File(tmp_path / "cNone_1.h5") as f:  # replicas stop at different steps
        steps = f["replicas/final_step"][()]
        assert steps.min() < 100 and steps.max() == 200


def test_two_budgets_give_identical_run_files_and_tables(tmp_path):
    exp = dict(grid=dict(m=[24], s=[0.0, 0.5, 1.0], scheme=["lecun"]), seeds=[0, 1],
               fixed=dict(depth=2, n=16, d=4, n_test=16, max_steps=150, tol_rel=1e-3),
               batch_over=["s", "scheme"], figures=["theta_lazy_rd"])  # fmt: skip
    cfg = {"experiments": {"a": exp}}
    slow = {
        ("cpu", "float64"): Throughput(1e-4, 0.0, 0.0)
    }  # 100 s of upper bound per replica: a cell 11 min, two 15
    one = expand_config(cfg, budget=Budget(runtime_min=1000), calibration=slow)
    three = expand_config(cfg, budget=Budget(runtime_min=12), calibration=slow)
    assert one["job"].nunique() == 1
    assert sorted(three["job"].unique()) == [f"m~24_part~{k}" for k in (1, 2, 3)]
    assert list(three["cell"]) == list(one["cell"])
    files = {}
    for name, frame, budget in (("one", one, Budget()), ("three", three, Budget(mem_mb=1000))):
        paths = []
        for _job, rows in frame.groupby("job", sort=False):
            outs = [str(tmp_path / name / p) for p in rows["path"]]
            train_cells(list(rows["params"]), outs, budget=budget)
            paths += outs
        files[name] = paths
    for a, b in zip(files["one"], files["three"]):
        assert Path(a).name == Path(b).name and a != b
        assert dataset_bytes(a) == dataset_bytes(b)
    runs_a, traj_a = collect(files["one"], "a")
    runs_b, traj_b = collect(files["three"], "a")
    # the tables are equal (but for a file column, the job directory, where there is one)
    pd.testing.assert_frame_equal(
        runs_a.drop(columns="file", errors="ignore"), runs_b.drop(columns="file", errors="ignore")
    )
    pd.testing.assert_frame_equal(
        traj_a.drop(columns="file", errors="ignore"), traj_b.drop(columns="file", errors="ignore")
    )


def test_a_replica_that_cannot_fit_is_named_before_any_job():
    cfg = yaml.safe_load(PAPER.read_text())
    no_limit = dict(runtime_min=10**7)
    with pytest.raises(
        BudgetError, match=r"theta_lazy.*m=8192, depth=2.*about \d+ MB of host memory"
    ):
        expand_config(cfg, budget=Budget(mem_mb=16000, **no_limit), calibration=DEFAULT_THROUGHPUT)
    tiny_gpu = Budget(mem_mb=64000, device="cuda", device_mem_mb=8000, **no_limit)
    with pytest.raises(BudgetError, match=r"m=8192, depth=3.*about \d+ MB of device memory"):
        expand_config(cfg, budget=tiny_gpu, calibration=DEFAULT_THROUGHPUT)


@pytest.mark.parametrize("preset", ["gpu-workstation", "slurm"])
def test_paper_preset_fits_the_gpu_budgets(preset):
    budget = PRESETS[preset]
    cells = expand_config(yaml.safe_load(PAPER.read_text()), budget=budget,
                          calibration=DEFAULT_THROUGHPUT)  # fmt: skip
    trained = cells[cells["kind"] != "gram_concentration"]
    jobs = [list(f["params"]) for _, f in trained.groupby(["experiment", "job"], sort=False)]
    assert len(jobs) >= trained.groupby(["experiment", "batch"]).ngroups
    assert max(job_mem_mb(j, budget) for j in jobs) <= 64000
    assert max(job_device_mem_mb(j, budget) for j in jobs) <= budget.device_mem_mb
    assert max(job_runtime_min(j, budget, DEFAULT_THROUGHPUT) for j in jobs) <= 24 * 60


@pytest.mark.parametrize("slowdown", [1.0, 10.0])
def test_default_catalog_is_not_split(slowdown):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cal = {k: Throughput(v.gflops / slowdown, v.step_s * slowdown, v.replica_s * slowdown)
           for k, v in DEFAULT_THROUGHPUT.items()}  # fmt: skip
    cells = expand_config(cfg, calibration=cal)
    assert (cells["job"] == cells["batch"]).all()
    assert all(p.startswith(f"results/{e}/runs/{b}/") for e, b, p in
               zip(cells["experiment"], cells["batch"], cells["path"]))  # fmt: skip


def test_cost_model_numbers():
    c = validate_cell(dict(m=1024, depth=2, n=32, d=8, max_steps=1000, seeds=[0, 1, 2, 3]))
    assert n_params(c) == 8 * 1024 + 1024 * 1024 + 1024
    assert step_flops(c) == 6 * 32 * n_params(c)
    tp = Throughput(gflops=10.0, step_s=1e-3, replica_s=1e-4, job_s=7.0, elem_ns=2.0)
    upper = job_seconds([c], tp)
    per_rep = step_flops(c) / 1e10 + 32 * 1024 * 2 * 2e-9 + 1e-4
    assert upper == pytest.approx(7.0 + 1000 * 1e-3 + 4 * 1000 * per_rep)
    assert job_seconds([c], tp, fraction=0.25) == pytest.approx(7.0 + (upper - 7.0) / 4)
    # two sequential chunks pay the per-step overhead twice
    assert job_seconds([c], tp, chunk=2) == pytest.approx(upper + 1000 * 1e-3)
    gpu = Budget(mem_mb=64000, device="cuda", device_mem_mb=80000)
    big = validate_cell(dict(m=8192, depth=4, n=32, d=8, n_test=128, seeds=list(range(10))))
    per_rep_mb = 1.5 * (5 * n_params(big) + 3 * 4 * (32 + 128 + 32) * 8192
                        + (6 + 3) * 5 * 32 * 32) * 8 / 2**20  # fmt: skip
    assert round(per_rep_mb) == 11741
    assert chunk_replicas([big], gpu) == int((0.9 * 80000 - 1000) // per_rep_mb) == 6
    assert job_runtime_min([c], Budget(), {("cpu", "float64"): tp}) == int(
        -(-(5 + 1.5 * upper / 60) // 1)
    )


def test_calibration_file_round_trip(tmp_path, monkeypatch):
    path = tmp_path / "cal.json"
    monkeypatch.setenv("LAZYPHASE_CALIBRATION", str(path))
    assert load_calibration()[("cpu", "float64")] == DEFAULT_THROUGHPUT[("cpu", "float64")]
    save_calibration({("cpu", "float64"): Throughput(42.0, 2e-4, 1e-5)}, date="today")
    cal = load_calibration()
    assert cal[("cpu", "float64")].gflops == 42.0 and "today" in cal[("cpu", "float64")].source
    assert cal[("cuda", "float64")] == DEFAULT_THROUGHPUT[("cuda", "float64")]


def test_budget_from_profile_strings():
    raw = yaml.load("{preset: slurm, mem_mb: 32000, device_mem_mb: 40000}", Loader=yaml.BaseLoader)
    assert raw["mem_mb"] == "32000"
    b = budget_from_config({"budget": budget_block(raw)})
    assert (b.mem_mb, b.device_mem_mb, b.device, b.runtime_min) == (32000, 40000, "cuda", 1440)
    with pytest.raises(Exception, match="unknown"):
        budget_from_config({"budget": {"preset": "laptop"}})


def test_plan_command(tmp_path, monkeypatch, capsys):
    from lazyphase.pipeline.cli import main

    monkeypatch.setenv("LAZYPHASE_CALIBRATION", str(tmp_path / "none.json"))
    jobs = tmp_path / "jobs.csv"
    assert main(["plan", "--configfile", str(PAPER), "--budget", "{preset: slurm}",
                 "--jobs", str(jobs)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "device=cuda device_mem_mb=80000 gpu_model=H100" in out
    assert "throughput: GPU table (H100: 67 TFLOP/s peak x 0.38)" in out
    table = pd.read_csv(jobs)
    assert table["mem_mb"].max() <= 64000 and table["runtime_min"].max() <= 1440
    theta = table[table["experiment"] == "theta_lazy"]
    assert len(theta) == 64 and theta["replicas"].sum() == 8 * 7 * 3 * 2 * 4 * 10
    assert out.splitlines()[-1].split()[1] == str(len(table))
