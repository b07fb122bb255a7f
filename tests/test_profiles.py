"""The shipped profiles (gpu-workstation, slurm) and the paper-scale config dry-run cleanly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
PAPER = ROOT / "config" / "paper.yaml"


def dry_run(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
         "--directory", str(work), *args],
        cwd=work, capture_output=True, text=True,
    )  # fmt: skip


def job_count(stdout: str, rule: str) -> int:
    found = re.search(rf"^{rule}\s+(\d+)\s*$", stdout, re.M)
    assert found, stdout
    return int(found.group(1))


@pytest.mark.parametrize(
    ("profile", "train_resources"),
    [("gpu-workstation", "gpu=1"), ("slurm", "gpu=0"), ("slurm-gpu", "slurm_partition=gpu")],
)
def test_profile_dry_run(tmp_path, profile, train_resources):
    # the slurm executor plugin needs no sbatch/sinfo/sacct for a dry run
    r = dry_run(tmp_path, "--configfile", str(TINY), "--replace-workflow-config",
                "--workflow-profile", str(ROOT / "profiles" / profile))  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # theta_lazy + phase_diagram widths, deep_phase widths (B2), condensation (B3, one batch)
    assert job_count(r.stdout, "train_cell") == 2 + 2 + 2 + 1
    train = r.stdout[r.stdout.index("rule train_cell:") :]
    assert train_resources in train.split("rule ", 2)[1]
    # issue 19: every rule is a script, printshellcmds printed "Shell command: None" per job
    assert "Shell command" not in r.stdout + r.stderr


def test_no_profile_prints_shell_commands():
    for path in (ROOT / "profiles").glob("*/config.yaml"):
        prof = yaml.safe_load(path.read_text())
        assert "printshellcmds" not in prof and "p" not in prof, path


def test_gpu_workstation_profile_keys():
    prof = yaml.safe_load((ROOT / "profiles" / "gpu-workstation" / "config.yaml").read_text())
    assert prof["set-resources"]["train_cell"]["gpu"] == 1
    assert prof["set-threads"]["train_cell"] == 2
    assert prof["resources"]["gpu"] >= 1
    assert prof["keep-going"] and prof["rerun-incomplete"]


def test_slurm_profile_keys():
    prof = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert prof["executor"] == "slurm"
    # nothing to edit: the account and partition come from sbatch's environment / the cluster
    assert "CHANGE_ME" not in (ROOT / "profiles" / "slurm" / "config.yaml").read_text()
    assert not {"slurm_account", "slurm_partition"} & set(prof["default-resources"])
    assert {"runtime", "mem_mb"} <= set(prof["default-resources"])
    assert prof["set-threads"]["train_cell"] == 2
    assert prof["group-components"][prof["groups"]["compute_gram_concentration"]] > 1


def test_slurm_gpu_profile_is_the_slurm_profile_plus_gpus():
    cpu = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    gpu = yaml.safe_load((ROOT / "profiles" / "slurm-gpu" / "config.yaml").read_text())
    assert gpu["set-resources"]["train_cell"] == {"slurm_partition": "gpu", "gpu": 1}
    assert gpu["set-threads"]["train_cell"] == 1
    differ = {k for k in cpu.keys() | gpu.keys() if cpu.get(k) != gpu.get(k)}
    assert differ == {"set-resources", "set-threads", "config"}
    assert cpu["config"] == ["budget={preset: slurm-cpu}"] and gpu["config"] == [
        "budget={preset: slurm}"
    ]


def test_paper_config_dry_run(tmp_path, monkeypatch):
    # the paper preset needs a GPU budget (docs/scale.md); under the slurm one (80 GB GPUs) and the
    # documented default throughput no batch is split; no machine calibration is read
    monkeypatch.setenv("LAZYPHASE_CALIBRATION", str(tmp_path / "none.json"))
    r = dry_run(tmp_path, "-q", "rules", "--configfile", str(PAPER), "--replace-workflow-config",
                "--config", "budget={preset: slurm}")  # fmt: skip
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    exp = yaml.safe_load(PAPER.read_text())["experiments"]["theta_lazy"]
    grid = exp["grid"]
    assert max(grid["depth"]) == 4 and max(grid["m"]) == 8192 and len(exp["seeds"]) == 10
    # one train_cell job per (m, activation, depth): s and scheme are batched together
    n_jobs = len(grid["m"]) * len(grid["activation"]) * len(grid["depth"])
    assert n_jobs == 64
    # B1: one job per (m, gamma'), the gamma values batched; m over three decades to >= 1e5
    b1 = yaml.safe_load(PAPER.read_text())["experiments"]["phase_diagram"]["grid"]
    assert max(b1["m"]) >= 1e5 and max(b1["m"]) / min(b1["m"]) >= 1e3
    n_b1 = len(b1["m"]) * len(b1["gamma_prime"])
    assert n_b1 == 54
    # C1-C8 at the published grids: one job per batch (replicas sharing shapes train together)
    from lazyphase.pipeline.budget import DEFAULT_THROUGHPUT, PRESETS
    from lazyphase.pipeline.grid import expand_config

    cells = expand_config(yaml.safe_load(PAPER.read_text()), budget=PRESETS["slurm"],
                          calibration=DEFAULT_THROUGHPUT)  # fmt: skip
    assert (cells["job"] == cells["batch"]).all()  # nothing split under the slurm budget
    chizat = cells[cells["experiment"].str.startswith("chizat")]
    assert len(chizat[chizat["experiment"] == "chizat_tau"]) == 43 * 4  # tau x rule x centering
    assert set(chizat[chizat["experiment"] == "chizat_width"]["params"].map(lambda c: c["m"])) == {
        2,
        3,
        4,
        6,
        8,
        12,
        16,
        24,
        32,
        64,
        128,
        256,
        512,
    }
    n_chizat = chizat.groupby(["experiment", "batch"]).ngroups
    # B2: one job per (m, activation, depth) left in the grid ((gamma_h, s) batched); B3: one
    b2 = yaml.safe_load(PAPER.read_text())["experiments"]["deep_phase"]
    n_b2 = len(b2["grid"]["m"]) * len(b2["grid"]["activation"]) * len(b2["grid"]["depth"])
    n_b2 -= len(b2["exclude"]) * len(b2["grid"]["activation"])
    assert n_b2 == 18 and max(b2["grid"]["depth"]) == 3 and b2["fixed"]["max_steps"] >= 1e4
    assert job_count(r.stdout, "train_cell") == n_jobs + n_b1 + n_chizat + n_b2 + 1
