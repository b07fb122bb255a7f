"""The Snakemake workflow, run for real: dry run of the default config, the tiny config end to
end into a temporary directory (real HDF5, real tables, real figures), and an idempotent rerun."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, TINY, TINY_ARGS, TINY_CFG, dataset_bytes, smk


def test_dry_run_of_the_default_config(tmp_path):
    from lazyphase.pipeline.grid import expand_config

    cfg_path = ROOT / "config.yaml"
    r = smk("-n", "-q", "rules", "--configfile", str(cfg_path), "--directory", str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    cfg = yaml.safe_load(cfg_path.read_text())
    grid = cfg["experiments"]["theta_lazy"]["grid"]
    # theta_lazy: one train_cell job per (m, activation, depth) left in the grid (s and scheme
    # are batched); phase_diagram: one per m (gamma and gamma' are batched)
    n_excluded = len(cfg["experiments"]["theta_lazy"].get("exclude", [])) * len(grid["activation"])
    n_a = len(grid["m"]) * len(grid["activation"]) * len(grid["depth"]) - n_excluded
    n_b = len(cfg["experiments"]["phase_diagram"]["grid"]["m"])
    # plus one job per batch of the other train experiments (C1-C8, ...)
    cells = expand_config(cfg)
    trained = cells[cells["kind"] != "gram_concentration"]
    n_jobs = trained.groupby(["experiment", "batch"]).ngroups
    others = trained[~trained["experiment"].isin(["theta_lazy", "phase_diagram"])]
    assert n_jobs == n_a + n_b + others.groupby(["experiment", "batch"]).ngroups
    assert re.search(rf"train_cell\s+{n_jobs}\b", r.stdout), r.stdout


def test_end_of_run_summary_and_no_shell_command_noise(tiny_run):
    out = (tiny_run / "snakemake.out").read_text()
    assert "Shell command: None" not in out
    summary = out[out.index("lazyphase: results under") :]
    assert "snakemake --report report.html" in summary
    assert "theta_lazy (train): results/theta_lazy/" in summary
    assert "replicas: 16, diverged" in summary and "thresholds (threshold.csv" in summary
    assert "phase_diagram (phase_diagram)" in summary and "gamma*" in summary
    assert "deep_phase (deep_phase_diagram)" in summary


def test_every_table_column_is_in_the_data_dictionary(tiny_run):
    """docs/tables.md describes every column of every table the tiny workflow writes."""
    from lazyphase.store.dictionary import docs_for, undocumented
    from lazyphase.store.files import read_table

    kinds = {
        n: e.get("kind", "train")
        for n, e in yaml.safe_load(TINY.read_text())["experiments"].items()
    }
    tables = sorted((tiny_run / "results").glob("*/*.parquet")) + sorted(
        (tiny_run / "results").glob("*/*.csv")
    )
    tables += sorted((tiny_run / "results").glob("*/refine/runs.parquet"))
    assert len(tables) >= 15
    for path in tables:
        exp = path.relative_to(tiny_run / "results").parts[0]
        frame = read_table(path)
        assert docs_for(path.name, kinds[exp]), f"{path}: table not in the dictionary"
        assert undocumented(path.name, frame.columns, kinds[exp]) == [], path
        assert frame.attrs["provenance"]["lazyphase_code"] != "unknown", path


def test_tiny_tables(tiny_run):
    res = tiny_run / "results" / "theta_lazy"
    runs = pd.read_parquet(res / "runs.parquet")
    # 2 m × 2 s × 2 schemes × 2 seeds replicas, 2 layers each (depth 1)
    assert len(runs) == 2 * 2 * 2 * 2 * 2
    assert set(runs["layer_name"]) == {"W1", "a"}
    assert set(runs["m"]) == {16, 32} and set(runs["s"]) == {-0.25, 0.5}
    assert runs["rd_final"].gt(0).all() and runs["gram_drift"].ge(0).all()
    assert runs["kappa"].to_numpy() == pytest.approx((runs["m"] ** runs["s"]).to_numpy())
    exps = pd.read_csv(res / "exponents.csv")
    assert len(exps) == 2 * 2 * 2  # scheme × s × layer
    assert exps["slope"].notna().all()
    thr = pd.read_csv(res / "threshold.csv")
    assert len(thr) == 2 * 2  # scheme × layer
    assert {"s_star_f", "s_star_f_low", "s_star_f_high"} <= set(thr.columns)
    fexps = pd.read_csv(res / "function_exponents.csv")
    assert len(fexps) == 2 * 2 and fexps["slope"].notna().all()  # scheme × s
    assert runs["fdist"].gt(0).all() and runs["test_loss_lin"].gt(0).all()
    traj = pd.read_parquet(res / "trajectory.parquet")
    assert {"t", "train_loss", "lambda_min_theta0", "train_loss_lin"} <= set(traj.columns)
    assert (res / "dataset.h5").stat().st_size > 0


def test_tiny_figures(tiny_run):
    figs = tiny_run / "results" / "theta_lazy" / "figures"
    for name in ("theta_lazy_rd", "theta_lazy_threshold", "loss_decay", "gram_drift",
                 "function_distance"):  # fmt: skip
        for ext in ("pdf", "png"):
            assert (figs / f"{name}.{ext}").stat().st_size > 5000, name


def test_rerun_does_nothing(tiny_run):
    r = smk(*TINY_ARGS, "--directory", str(tiny_run))
    assert r.returncode == 0, r.stderr
    assert "Nothing to be done" in r.stdout + r.stderr


def test_code_fingerprint_is_a_recorded_parameter(tiny_run):
    """Every job records the fingerprint of src/lazyphase among its params, so a change of the
    library reruns what it affects (Snakemake's params rerun trigger)."""
    from lazyphase.pipeline.fingerprint import code_fingerprint

    meta = list((tiny_run / ".snakemake" / "metadata").iterdir())
    with_code = [p for p in meta if code_fingerprint() in p.read_text()]
    assert len(with_code) >= 8  # dataset, run dirs, tables and figures


def test_bad_config_is_rejected_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    cfg = yaml.safe_load(TINY.read_text())
    cfg["experiments"]["theta_lazy"]["grid"]["scheme"] = ["lecun", "he"]
    bad.write_text(yaml.safe_dump(cfg))
    r = smk("-n", "--configfile", str(bad), "--directory", str(tmp_path))
    assert r.returncode != 0
    assert "'scheme'" in r.stderr + r.stdout and "'he'" in r.stderr + r.stdout


def test_configuration_reference_is_in_sync():
    from lazyphase.pipeline.config import reference_markdown

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert (ROOT / "docs/configuration.md").read_text() == reference_markdown(schema), (
        "regenerate with: lazyphase config-reference > docs/configuration.md"
    )


#: config/README.md: a written part, then this line, then the generated reference
README_MARK = "<!-- generated by `lazyphase config-reference`: everything below -->\n"


def test_config_readme_reference_is_in_sync():
    from lazyphase.pipeline.config import reference_markdown

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    written, mark, generated = (ROOT / "config/README.md").read_text().partition(README_MARK)
    assert mark and written.startswith("# Configuring lazyphase"), "config/README.md lost its mark"
    assert generated == reference_markdown(schema), (
        "regenerate with: sed -i '/^<!-- generated by/q' config/README.md && "
        "lazyphase config-reference >> config/README.md"
    )


def test_one_default_config():
    """config/config.yaml is the file (snakedeploy copies config/); the root config.yaml, which
    `snakemake` at the top level and older commands read, is a git link to it."""
    root = ROOT / "config.yaml"
    assert root.is_symlink() and root.readlink() == Path("config/config.yaml")
    assert not (ROOT / "config" / "config.yaml").is_symlink()
    listed = subprocess.run(["git", "ls-files", "-s", "config.yaml"], cwd=ROOT,
                            capture_output=True, text=True).stdout  # fmt: skip
    assert not listed or listed.startswith("120000 "), listed  # a symlink in git, not a copy


def test_tiny_gram_concentration(tiny_run):
    res = tiny_run / "results" / "gram_concentration"
    table = pd.read_parquet(res / "concentration.parquet")
    assert len(table) == 3 * 3 * 2  # widths × draws × layers
    assert table["rel_error"].gt(0).all()
    summary = pd.read_csv(res / "concentration_summary.csv")
    assert summary["frac_ok"].between(0, 1).all()
    for ext in ("pdf", "png"):
        assert (res / "figures" / f"gram_concentration.{ext}").stat().st_size > 5000


def test_tiny_phase_diagram(tiny_run):
    """B1 end to end: coarse grid, one bisection round, S_w table, boundary and figure."""
    res = tiny_run / "results" / "phase_diagram"
    phase = pd.read_csv(res / "phase.csv")
    coarse = phase[phase["round"] == 0]
    assert len(coarse) == 2 * 2  # gamma' x gamma
    assert set(coarse["gamma"]) == {0.5, 1.5} and set(coarse["gamma_prime"]) == {-0.5, 0.5}
    assert coarse["S_w"].notna().all() and set(phase["regime"]) <= {"linear", "condensed"}
    boundary = pd.read_csv(res / "boundary.csv")
    assert list(boundary["gamma_prime"]) == [-0.5, 0.5]
    # each gamma' with a sign change got its midpoint gamma = 1 trained at both widths
    # the bisection refines the RD and the converged-D sign changes (refine_on's default)
    crossed = boundary[boundary["gamma_star"].notna() | boundary["gamma_star_fconv"].notna()]
    assert set(boundary["refined_on"]) == {"rd+fdist_conv"}
    fine = phase[phase["round"] == 1]
    assert set(fine["gamma_prime"]) == set(crossed["gamma_prime"])
    assert (fine["gamma"] == 1.0).all() and (fine["n_m"] == 2).all()
    assert len(list((res / "refine").rglob("*.h5"))) == 2 * len(crossed)
    assert {"fdist_slope", "fdist_conv_slope", "fdist_conv_ci_low"} <= set(phase)
    assert {"gamma_star_f", "gamma_star_f_low", "gamma_star_f_high"} <= set(boundary)
    base = pd.read_csv(res / "kernel_baselines.csv")
    assert len(base) == 2 * 2 * 2 * 2  # m x gamma' x gamma x seeds (coarse grid)
    assert base[["test_loss_network", "test_loss_theta0", "test_loss_after"]].gt(0).all().all()
    for name in ("phase_diagram", "function_phase_diagram", "kernel_baselines"):
        for ext in ("pdf", "png"):
            assert (res / "figures" / f"{name}.{ext}").stat().st_size > 5000, name


def test_tiny_deep_phase_diagram(tiny_run):
    """B2 end to end: (gamma_h, s) grid of depth-2 cells, one bisection round in s, the table of
    every layer, the boundary per layer and gamma_h, and the figure."""
    res = tiny_run / "results" / "deep_phase"
    phase = pd.read_csv(res / "phase.csv")
    coarse = phase[phase["round"] == 0]
    assert len(coarse) == 2 * 2 * 3  # gamma_h x s x layers
    assert set(coarse["layer_name"]) == {"W1", "W2", "a"}
    assert set(coarse["gamma_h"]) == {0.25, 0.75} and set(coarse["s"]) == {-0.5, 0.5}
    assert set(phase["scheme"]) == {"deep:0.25", "deep:0.75"}
    assert coarse["slope"].notna().all() and set(phase["regime"]) <= {"linear", "condensed"}
    assert {"ci_low", "ci_high", "n_max_steps", "median_final_step", "hatched"} <= set(phase)
    boundary = pd.read_csv(res / "boundary.csv")
    assert len(boundary) == 2 * 3  # gamma_h x layers
    crossed = boundary[boundary["s_star"].notna() | boundary["s_star_fconv"].notna()]
    fine = phase[phase["round"] == 1]
    # every crossing in [-0.5, 0.5] (RD of a layer, or converged D) got its midpoint s = 0
    assert set(fine["gamma_h"]) == set(crossed["gamma_h"])
    assert (fine["s"] == 0.0).all() and (fine["n_m"] == 2).all()
    assert {"s_star_f", "s_star_fconv_low", "s_star_fconv_high", "refined_on"} <= set(boundary)
    cond = pd.read_csv(res / "deep_condensation.csv")
    assert len(cond) == 2 * 2 * 2 * 2 * 2  # m x gamma_h x s x seeds x hidden layers
    assert cond["n_eff_init"].between(1, 32).all() and cond["n_eff_ratio"].gt(0).all()
    for name in ("deep_phase_diagram", "function_phase_diagram", "deep_condensation"):
        for ext in ("pdf", "png"):
            assert (res / "figures" / f"{name}.{ext}").stat().st_size > 5000, name


def test_tiny_condensation(tiny_run):
    """B3 end to end: neurons at init and end, the function on the circle, n_eff, the figure."""
    res = tiny_run / "results" / "condensation"
    neurons = pd.read_parquet(res / "neurons.parquet")
    assert len(neurons) == 2 * 2 * 2 * 16  # s x seeds x stages x neurons
    assert set(neurons["regime"]) == {"linear", "condensed"}
    assert (neurons["amplitude"] >= 0).all() and neurons["angle"].abs().max() <= 3.1416
    summary = pd.read_csv(res / "condensation.csv")
    assert len(summary) == 2 * 2 * 2 and summary["n_eff"].between(1, 72).all()
    circle = pd.read_parquet(res / "circle.parquet")
    assert circle.loc[~circle["train"], "f_final"].notna().all()
    for ext in ("pdf", "png"):
        assert (res / "figures" / f"condensation.{ext}").stat().st_size > 5000


def test_cores_1_gives_bitwise_identicaldataset_bytes(tiny_run, tmp_path):
    """Determinism: a second run with --cores 1 writes the same bits into every dataset."""
    target = "results/theta_lazy/runs.parquet"
    r = smk("--cores", "1", *TINY_CFG, "--directory", str(tmp_path), target)
    assert r.returncode == 0, r.stderr[-2000:]
    files = sorted((tiny_run / "results" / "theta_lazy" / "runs").rglob("*.h5"))
    assert len(files) == 8
    for f in files:
        assert dataset_bytes(f) == dataset_bytes(tmp_path / f.relative_to(tiny_run)), f.name


def test_corrupt_run_file_stops_aggregation_with_its_name(tiny_run, tmp_path):
    import shutil

    work = tmp_path / "copy"
    shutil.copytree(tiny_run, work)
    victim = sorted((work / "results" / "theta_lazy" / "runs").rglob("*.h5"))[0]
    victim.write_bytes(victim.read_bytes()[:1000])
    r = smk(
        "--cores", "1", *TINY_CFG, "--directory", str(work),
        "--forcerun", "aggregate_experiment", "results/theta_lazy/runs.parquet",
    )  # fmt: skip
    assert r.returncode != 0
    log = (work / "logs" / "aggregate_experiment" / "theta_lazy.log").read_text()
    assert victim.name in log and "rerun the workflow" in log


def test_report_is_self_contained_with_every_figure(tiny_report):
    report = tiny_report
    html = report.read_text()
    assert report.stat().st_size > 100_000  # figures are embedded
    for name in (
        "theta_lazy_rd",
        "theta_lazy_threshold",
        "loss_decay",
        "gram_drift",
        "function_distance",
        "gram_concentration",
        "phase_diagram",
        "deep_phase_diagram",
        "condensation",
    ):
        assert f"{name}.png" in html, name


def test_verify_the_tiny_workflow_then_the_issue_21_bit_flip(tiny_run, tmp_path):
    """The tiny workflow's results verify clean (manifests included); one bit flipped in
    trajectory/rd of one run file (0.0 -> 2.0 at t = 0) stops ``-R aggregate_experiment``
    before it writes a table, ``verify`` names it with the command that rebuilds it, and that
    command brings every file back."""
    import shutil

    import h5py

    work = tmp_path / "copy"
    shutil.copytree(tiny_run, work)
    cfg = ("--config", str(TINY))
    lazy = [sys.executable, "-m", "lazyphase", "verify", str(work / "results"), *cfg]
    r = subprocess.run(lazy, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    man = work / "results" / "theta_lazy" / "manifest.json"
    assert "figures/loss_decay.png" in man.read_text() and "exponents.csv" in man.read_text()

    victim = sorted((work / "results" / "theta_lazy" / "runs").rglob("*.h5"))[0]
    with h5py.File(victim) as f:
        assert f["trajectory/rd"][0, 0, 0] == 0.0
        offset = f["trajectory/rd"].id.get_chunk_info(0).byte_offset
    data = bytearray(victim.read_bytes())
    data[offset + 7] ^= 0x40  # 0.0 -> 2.0
    victim.write_bytes(bytes(data))
    traj = work / "results" / "theta_lazy" / "trajectory.parquet"
    before = traj.read_bytes()
    r = smk("--cores", "1", *TINY_CFG, "--directory", str(work), "-R", "aggregate_experiment",
            "results/theta_lazy/trajectory.parquet")  # fmt: skip
    assert r.returncode != 0
    log = (work / "logs" / "aggregate_experiment" / "theta_lazy.log").read_text()
    assert f"{victim.name}: dataset trajectory/rd fails its fletcher32 checksum" in log
    assert not traj.exists() or traj.read_bytes() == before  # no table built from it

    r = subprocess.run(lazy, capture_output=True, text=True)
    assert r.returncode == 2
    rel = victim.relative_to(work)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(f"{rel}: "))
    assert "trajectory/rd fails its fletcher32 checksum" in line
    command = line.split("rebuild: ", 1)[1].split()
    assert command[:3] == ["snakemake", "--cores", "2"] and command[-2:] == ["-R", str(rel.parent)]
    r = smk(*command[1:], "--directory", str(work))
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(lazy, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert dataset_bytes(victim) == dataset_bytes(tiny_run / rel)
