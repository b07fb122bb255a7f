"""The SLURM profiles for real, on a one-node cluster started by scripts/slurm_local.sh: the tiny
workflow through sbatch (resources as declared, local rules local, results bit-identical to
``--cores 2``), two GPU jobs at once with distinct CUDA_VISIBLE_DEVICES, and a rejected
submission that ends the run. Needs root on Debian/Ubuntu (the script installs SLURM with
apt-get); skipped otherwise. Run with ``make test-slurm`` (part of ``make test``)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from conftest import SLURM_ACCOUNT as ACCOUNT
from conftest import SLURM_FAST_POLL as FAST_POLL
from conftest import dataset_contents

ROOT = Path(__file__).resolve().parents[1]
# tests/configs/tiny.yaml less theta_lazy: every submitted rule kind, fewer sbatch waves
TINY = ROOT / "tests" / "configs" / "slurm_tiny.yaml"
TINY_CFG = ("--configfile", str(TINY), "--replace-workflow-config")

pytestmark = pytest.mark.slurm


def smk(work: Path, *args: str, account: str = ACCOUNT) -> subprocess.CompletedProcess:
    env = {**os.environ, "SBATCH_ACCOUNT": account}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
         "--directory", str(work), *TINY_CFG, *args],
        cwd=work, capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip


def jobs_of(log: str) -> tuple[list[dict], dict[str, list[dict]]]:
    """Snakemake's own account of a run: every job (rule, local or not, threads, mem_mb,
    runtime) and, per SLURM job id, the Snakemake jobs it ran (several for a group)."""
    jobs: list[dict] = []
    by_id: dict[str, dict] = {}
    submitted: dict[str, list[dict]] = {}
    cur: dict | None = None
    group: list[dict] | None = None
    for line in log.splitlines():
        s = line.strip()
        if m := re.fullmatch(r"(localrule|rule) (\w+):", s):
            cur = {"rule": m[2], "local": m[1] == "localrule", "threads": 1}
            jobs.append(cur)
            if line.startswith(" ") and group is not None:
                group.append(cur)
        elif re.search(r"\] Group job \S+ \(jobs", line):
            group = []
        elif m := re.match(r"Job (\S+) has been submitted with SLURM jobid (\d+)", s):
            submitted[m[2]] = [by_id[m[1]]] if m[1] in by_id else group or []
            group = None
        elif cur is not None and (m := re.fullmatch(r"(jobid|threads): (\d+)", s)):
            cur[m[1]] = int(m[2])
            if m[1] == "jobid":
                by_id[m[2]] = cur
        elif cur is not None and s.startswith("resources: "):
            res = dict(kv.split("=", 1) for kv in s[len("resources: ") :].split(", "))
            cur["mem_mb"], cur["runtime"] = int(res["mem_mb"]), int(res["runtime"])
    return jobs, submitted


def sacct(ids) -> dict[str, dict[str, str]]:
    fields = "JobID,JobName,State,ReqMem,Timelimit,ReqCPUS,Account,Partition,AllocTRES,Start,End"
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "-o", fields],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [dict(zip(fields.split(","), ln.split("|"))) for ln in out.splitlines() if ln]
    return {r["JobID"]: r for r in rows}


def minutes(limit: str) -> int:
    """sacct's Timelimit ([D-]HH:MM:SS) in minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (s > 0)


def assert_same_datasets(a: Path, b: Path, under: str = "results") -> int:
    fa = sorted(p.relative_to(a) for p in (a / under).rglob("*.h5"))
    fb = sorted(p.relative_to(b) for p in (b / under).rglob("*.h5"))
    assert fa and fa == fb
    for f in fa:
        assert dataset_contents(a / f) == dataset_contents(b / f), f
    return len(fa)


@pytest.fixture(scope="module")
def cpu_run(slurm_cluster, tmp_path_factory):
    work = tmp_path_factory.mktemp("cores2")
    t0 = time.monotonic()
    r = smk(work, "--cores", "2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    print(f"--cores 2: {time.monotonic() - t0:.1f}s")
    return work


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    work = tmp_path_factory.mktemp("slurm")
    t0 = time.monotonic()
    # docs/slurm.md: `SBATCH_ACCOUNT=ci snakemake --workflow-profile profiles/slurm` (+ FAST_POLL)
    r = smk(work, "--workflow-profile", str(ROOT / "profiles" / "slurm"), *FAST_POLL)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    print(f"--workflow-profile profiles/slurm: {time.monotonic() - t0:.1f}s")
    return work, r.stdout + r.stderr


def test_every_submitted_job_asked_for_what_its_rule_declared(slurm_run):
    _, log = slurm_run
    jobs, submitted = jobs_of(log)
    remote = [j for j in jobs if not j["local"]]
    assert {j["rule"] for j in remote} == {
        "train_cell",
        "compute_gram_concentration",
        "refine_phase_boundary",
    }
    # every non-local job went through exactly one sbatch submission
    members = [id(j) for js in submitted.values() for j in js]
    assert sorted(members) == sorted(id(j) for j in remote), log[-3000:]
    acct = sacct(submitted)
    assert set(acct) == set(submitted)
    assert len({row["JobName"] for row in acct.values()}) == 1  # the plugin's run id
    for jid, js in submitted.items():
        row = acct[jid]
        assert row["State"] == "COMPLETED", row
        assert row["Account"] == ACCOUNT, row  # from SBATCH_ACCOUNT, nothing in the profile
        assert row["Partition"] == "cpu", row  # the cluster's default partition
        # a group's members run side by side: memory and cpus add up, the time limit is the max
        assert row["ReqMem"] == f"{sum(j['mem_mb'] for j in js)}M", (row, js)
        assert minutes(row["Timelimit"]) == max(j["runtime"] for j in js), (row, js)
        assert int(row["ReqCPUS"]) == sum(j["threads"] for j in js), (row, js)
    assert any(len(js) == 2 for js in submitted.values())  # the compute_gram_concentration group
    assert any(js[0]["threads"] == 2 for js in submitted.values())  # set-threads: train_cell


def test_local_rules_stayed_local(slurm_run):
    work, log = slurm_run
    jobs, submitted = jobs_of(log)
    local = [j for j in jobs if j["local"]]
    assert {
        "make_dataset",
        "aggregate_experiment",
        "aggregate_concentration",
        "aggregate_phase",
        "plot_phase_diagram",
        "all",
    } <= {j["rule"] for j in local}
    assert not any(j["local"] for js in submitted.values() for j in js)
    assert (work / "results" / "phase_diagram" / "figures" / "phase_diagram.png").stat().st_size


def test_slurm_results_are_bit_identical_to_cores_2(slurm_run, cpu_run):
    # dataset, 8 run files, 2 concentration files, the refinement's run files
    assert assert_same_datasets(slurm_run[0], cpu_run) >= 1 + 8 + 2 + 1


def test_two_gpu_jobs_at_once_get_distinct_devices_and_fall_back_to_cpu(
    slurm_cluster, cpu_run, tmp_path
):
    from lazyphase.pipeline.grid import expand_config

    cells = expand_config(yaml.safe_load(TINY.read_text()))
    trained = cells[cells["kind"] != "gram_concentration"]
    batches = sorted({f"{e}/runs/{b}" for e, b in zip(trained["experiment"], trained["batch"])})
    assert len(batches) == 2
    r = smk(tmp_path, "--workflow-profile", str(ROOT / "profiles" / "slurm-gpu"), *FAST_POLL,
            *(f"results/{b}" for b in batches))  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    _, submitted = jobs_of(r.stdout + r.stderr)
    assert len(submitted) == 2
    acct = sacct(submitted)
    device = {}
    for row in acct.values():
        assert row["State"] == "COMPLETED" and row["Partition"] == "gpu", row
        assert "gres/gpu=1" in row["AllocTRES"], row
    for b in batches:
        text = (tmp_path / "logs" / "train_cell" / f"{b.replace('/runs', '')}.log").read_text()
        m = re.search(r"SLURM job (\d+): CUDA_VISIBLE_DEVICES=(\S+) \(SLURM's", text)
        assert m and m[1] in acct, text
        device[m[1]] = m[2]
        assert "CUDA is not available: using the CPU" in text, text
        assert " on cpu in " in text, text
    assert set(device.values()) <= {"0", "1"}
    span = {j: (datetime.fromisoformat(r["Start"]), datetime.fromisoformat(r["End"]))
            for j, r in acct.items()}  # fmt: skip
    overlapping = [
        (a, b)
        for a, b in itertools.combinations(span, 2)
        if span[a][0] < span[b][1] and span[b][0] < span[a][1]
    ]
    assert overlapping, span  # two GPU jobs ran at the same time ...
    for a, b in overlapping:
        assert device[a] != device[b], (device, span)  # ... on different GPUs
    for b in batches:
        assert_same_datasets(tmp_path, cpu_run, under=f"results/{b}")


def test_a_rejected_submission_ends_the_run(slurm_cluster, tmp_path):
    """An account sbatch refuses: the job fails at submission (and its retry), Snakemake exits
    non-zero with sbatch's message instead of waiting."""
    t0 = time.monotonic()
    r = smk(tmp_path, "--workflow-profile", str(ROOT / "profiles" / "slurm"), *FAST_POLL,
            "results/phase_diagram/runs/m~16", account="no_such_account")  # fmt: skip
    assert r.returncode != 0
    assert "Invalid account" in r.stdout + r.stderr, r.stdout[-3000:] + r.stderr[-3000:]
    assert time.monotonic() - t0 < 120
