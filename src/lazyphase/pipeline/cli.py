"""Command line: ``lazyphase train-cell``, ``inspect``, ``summary``, ``verify``, ``plan``,
``calibrate`` and the pipeline's steps."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from lazyphase import __version__
from lazyphase.cells import ConfigError, load_cell
from lazyphase.pipeline import headline
from lazyphase.pipeline.inspection import format_run  # noqa: F401  (old import path)
from lazyphase.store.concentration import ConcentrationFileError
from lazyphase.store.files import TableFileError
from lazyphase.store.h5 import WriteError
from lazyphase.store.runs import RunFileError


def _train_cell(args: argparse.Namespace) -> int:
    from lazyphase.pipeline.jobs import TrainingInterrupted, train_cells

    cell = load_cell(args.config)
    try:
        lines = train_cells(
            [cell],
            [args.out],
            threads=args.threads,
            gpus=args.gpus,
            checkpoint=args.checkpoint or f"{args.out}.ckpt.pt",
            checkpoint_every=args.checkpoint_every,
            log_every=args.log_every,
        )
    except TrainingInterrupted as exc:
        print(f"lazyphase: {exc}; run the same command again to resume", file=sys.stderr)
        return 128 + exc.signum if exc.signum else 1
    for line in lines:
        print(line)
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from lazyphase.pipeline.inspection import inspect_file

    bad = 0
    for path in args.file:
        result = inspect_file(path, args.rows)
        if result.ok:
            print(result.text)
        else:
            bad += 1
            print(f"lazyphase: error: {result.text}", file=sys.stderr)
    return 2 if bad else 0


def _summary(args: argparse.Namespace) -> int:
    import yaml

    from lazyphase.pipeline.summary import summarize

    path = Path(args.configfile)
    if not path.exists():
        raise ConfigError(f"{path}: no such configuration file (pass --configfile)")
    with open(path) as fh:  # only the experiment names and kinds are read (not validated)
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw.get("experiments"), dict):
        raise ConfigError(f"{path}: no 'experiments' mapping")
    print(summarize(raw, args.directory))
    return 0


def _config_reference(args: argparse.Namespace) -> int:
    import yaml

    from lazyphase.pipeline.config import reference_markdown

    with open(args.schema) as fh:
        print(reference_markdown(yaml.safe_load(fh)), end="")
    return 0


def _tables_reference(args: argparse.Namespace) -> int:
    from lazyphase.store.dictionary import tables_markdown

    print(tables_markdown(), end="")
    return 0


def _default_schema() -> str:
    here = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"
    return str(here) if here.exists() else "workflow/schemas/config.schema.yaml"


def _validate_config(args: argparse.Namespace) -> int:
    import yaml

    from lazyphase.pipeline.config import grid_warnings, validated_grid

    with open(args.schema) as fh:
        schema = yaml.safe_load(fh)
    with open(args.file) as fh:
        raw = yaml.safe_load(fh) or {}
    try:
        cfg, cells = validated_grid(raw, schema)
    except ConfigError as exc:
        raise ConfigError([f"{args.file}: {p}" for p in exc.problems]) from None
    for name, frame in cells.groupby("experiment", sort=False):
        print(
            f"{name}: {len(frame)} cells in {frame['batch'].nunique()} jobs, "
            f"{sum(len(p['seeds']) for p in frame['params'])} replicas"
        )
    for warning in grid_warnings(cells, cfg):
        print(f"lazyphase: warning: {args.file}: {warning}", file=sys.stderr)
    print(f"{args.file}: valid")
    return 0


def _plan(args: argparse.Namespace) -> int:
    import yaml

    from lazyphase.pipeline.budget import (
        budget_block,
        budget_from_config,
        calibration_for,
        load_evidence,
    )
    from lazyphase.pipeline.config import validate_config
    from lazyphase.pipeline.plan import format_plan, plan_jobs, plan_summary

    with open(args.schema) as fh:
        schema = yaml.safe_load(fh)
    with open(args.configfile) as fh:
        raw = yaml.safe_load(fh) or {}
    if args.budget:  # the same `budget={...}` string as the profiles' --config
        raw["budget"] = budget_block(yaml.safe_load(args.budget.removeprefix("budget=")))
    cfg = validate_config(raw, schema)
    budget = budget_from_config(cfg)
    cal = calibration_for(budget, args.calibration)
    evidence = load_evidence(args.calibration)
    source = cal[(budget.device, "float64")].source
    jobs = plan_jobs(cfg, budget, cal, evidence)
    named = f"from {evidence['runs']} runs in {evidence['from']}" if evidence else None
    print(format_plan(plan_summary(jobs), budget, source, named))
    if args.jobs:
        jobs.to_csv(args.jobs, index=False)
    if args.against:
        from lazyphase.pipeline.evidence import compare_runs, format_comparison, job_benchmarks

        bench = job_benchmarks(args.against)
        if bench.empty:
            raise ConfigError(f"{args.against}: no logs/benchmarks/train_cell/*/*.tsv to compare")
        print(f"\nestimate (expected) against the runs in {args.against}:")
        print(format_comparison(compare_runs(jobs, bench, args.cores), args.cores))
    return 0


def _calibrate_from_runs(args: argparse.Namespace) -> int:
    """``calibrate --from-runs DIR``: the step evidence and the rate of the runs in DIR."""
    import datetime

    from lazyphase.pipeline.budget import load_calibration, save_calibration
    from lazyphase.pipeline.evidence import (
        fit_rate,
        job_benchmarks,
        run_costs,
        step_evidence,
        summarize_evidence,
    )

    costs = run_costs(args.from_runs)
    if costs.empty:
        raise ConfigError(f"{args.from_runs}: no run files under results/*/runs/*/")
    bench = job_benchmarks(args.from_runs)
    cal = load_calibration(args.out)
    evidence: dict = {**step_evidence(costs), "from": str(args.from_runs), "runs": len(costs)}
    entries = {}
    kinds = costs["device"] + "/" + costs["params"].map(lambda c: c["dtype"])
    for kind in sorted(set(kinds)):  # the rate of each device and dtype the runs used
        dev, dtype = kind.split("/")
        tp, over, factor = fit_rate(costs[kinds == kind], bench, cal[(dev, dtype)])
        entries[(dev, dtype)] = tp
        evidence.update(rate_factor=factor, overhead_factor=over)
        print(f"{kind}: from {int((kinds == kind).sum())} runs, overheads x {over:.2f}, rate / "
              f"{factor:.2f}: {tp.gflops:.1f} GFLOP/s, {tp.step_s * 1e6:.0f} us per step, "
              f"{tp.replica_s * 1e6:.1f} us per replica-step, {tp.job_s:.1f} s per job")  # fmt: skip
    for line in summarize_evidence(evidence):
        print(line)
    path = save_calibration(
        entries, args.out, evidence=evidence,
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        host=f"runs in {args.from_runs}",
    )  # fmt: skip
    print(f"calibration written to {path}")
    return 0


def _gpu_probe(args: argparse.Namespace) -> int:
    """``calibrate --gpu-probe``: the GD step's share of the matmul peak, on a GPU if present."""
    import torch

    from lazyphase.pipeline.budget import GPU_EFFICIENCY
    from lazyphase.pipeline.calibration import gpu_probe

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if dev == "cuda" else "CPU (no GPU)"
    for dtype in args.dtype:
        r = gpu_probe(dev, dtype, scale=args.scale)
        print(f"{name} {dtype}: GD step {r['step_gflops']:.1f} GFLOP/s, torch.mm "
              f"{r['matmul_gflops']:.1f} GFLOP/s: efficiency {r['efficiency']:.2f} "
              f"(table: {GPU_EFFICIENCY[dtype]:.2f})")  # fmt: skip
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    import datetime
    import platform

    import torch

    from lazyphase.pipeline.budget import save_calibration
    from lazyphase.pipeline.calibration import measure_throughput
    from lazyphase.pipeline.jobs import set_threads

    set_threads(args.threads)
    if args.from_runs:
        return _calibrate_from_runs(args)
    if args.gpu_probe:
        return _gpu_probe(args)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    from dataclasses import replace

    from lazyphase.pipeline.jobs import measure_job_seconds

    entries = {}
    job_s = {dev: measure_job_seconds(dev) for dev in devices}  # first: a cold process
    for dev in devices:
        if dev == "cuda":
            from lazyphase.pipeline.device import strict_float32

            strict_float32()
        for dtype in args.dtype:
            tp = replace(measure_throughput(dev, dtype, scale=args.scale), job_s=job_s[dev])
            entries[(dev, dtype)] = tp
            print(
                f"{dev}/{dtype}: {tp.gflops:.1f} GFLOP/s, {tp.step_s * 1e6:.0f} us per step, "
                f"{tp.replica_s * 1e6:.1f} us per replica-step, {tp.job_s:.1f} s per job"
            )
    name = torch.cuda.get_device_name(0) if "cuda" in devices else platform.processor()
    path = save_calibration(
        entries, args.out,
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        host=f"{platform.node()} ({name or platform.machine()}), {args.threads} thread(s)",
        torch=torch.__version__,
    )  # fmt: skip
    print(f"calibration written to {path}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Check every file under ``results``; one line per problem; exit 2 if any."""
    import yaml

    from lazyphase.pipeline.config import validated_grid
    from lazyphase.pipeline.verify import verify_results

    results = Path(args.results)
    if not results.is_dir():
        raise ConfigError(f"{results}: no such results folder")
    cfg_path = Path(args.config) if args.config else results.parent / "config.yaml"
    config = cells = None
    smk = "snakemake --cores 2"
    if cfg_path.exists():
        with open(args.schema) as fh:
            schema = yaml.safe_load(fh)
        with open(cfg_path) as fh:
            raw = yaml.safe_load(fh) or {}
        try:
            config, cells = validated_grid(raw, schema)
        except ConfigError as exc:
            raise ConfigError(f"{cfg_path}: {exc}") from None
        if args.config:
            smk += f" --configfile {args.config} --replace-workflow-config"
    elif args.config:
        raise ConfigError(f"{cfg_path}: no such configuration file")
    else:
        print(f"lazyphase: note: no {cfg_path}; completeness not checked (pass --config)",
              file=sys.stderr)  # fmt: skip
    problems = verify_results(results, config, cells)
    for p in problems:
        print(p.line(smk))
    if problems:
        print(
            f"lazyphase: error: {len(problems)} problem(s) under {results} (run each command "
            f"in {results.parent.resolve()})",
            file=sys.stderr,
        )
        return 2
    print(f"{results}: every file verified" + ("" if config is None else " and complete"))
    return 0


def _add_file_commands(sub: argparse._SubParsersAction) -> None:
    """``train-cell``, ``inspect`` and ``summary``: make or read the files of one run."""
    t = sub.add_parser("train-cell", help="train every replica of one cell into a run file")
    t.add_argument("--config", required=True, help="CELL.yaml with the cell's parameters")
    t.add_argument("--out", required=True, help="the HDF5 run file to write")
    t.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    t.add_argument("--gpus", type=int, default=0, help="lease this many GPUs (0: CPU)")
    t.add_argument(
        "--checkpoint", help="checkpoint file (default OUT.ckpt.pt; docs/checkpoints.md)"
    )
    t.add_argument(
        "--checkpoint-every", type=float, default=10.0, help="minutes between checkpoints"
    )
    t.add_argument("--log-every", type=float, default=10.0, help="seconds between progress lines")
    t.set_defaults(func=_train_cell)
    i = sub.add_parser(
        "inspect",
        help="identify any file the pipeline writes (run, data set, concentration, table, "
        "manifest, checkpoint), print its provenance and key facts; exit 2 if one is corrupt",
    )
    i.add_argument("file", nargs="+")
    i.add_argument("--rows", type=int, default=12, help="snapshots shown per replica")
    i.set_defaults(func=_inspect)
    sm = sub.add_parser(
        "summary",
        help="where the results are, thresholds, boundaries and diverged replicas (as printed "
        "at the end of a workflow run)",
    )
    sm.add_argument("--configfile", default="config.yaml", help="the workflow configuration")
    sm.add_argument("--directory", default=".", help="the folder holding results/")
    sm.set_defaults(func=_summary)


def _add_config_commands(sub: argparse._SubParsersAction) -> None:
    """``config-reference``, ``tables-reference`` and ``validate-config``: the configuration
    and the references generated from its schemas."""
    r = sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    r.add_argument("--schema", default=_default_schema())
    r.set_defaults(func=_config_reference)
    tr = sub.add_parser("tables-reference", help="print the tables' data dictionary (Markdown)")
    tr.set_defaults(func=_tables_reference)
    v = sub.add_parser("validate-config", help="check a workflow config without running anything")
    v.add_argument("file")
    v.add_argument("--schema", default=_default_schema())
    v.set_defaults(func=_validate_config)


def _add_budget_commands(sub: argparse._SubParsersAction) -> None:
    """``plan`` and ``calibrate``: the jobs of a configuration under a budget, and the
    throughput that prices them."""
    pl = sub.add_parser("plan", help="jobs, memory and hours of a configuration under a budget")
    pl.add_argument("--configfile", default="config.yaml")
    pl.add_argument(
        "--budget",
        help="a budget block as the profiles give it, e.g. '{preset: gpu-workstation}' "
        "(default: the configuration's budget block)",
    )
    pl.add_argument("--calibration", help="calibration file (default: $LAZYPHASE_CALIBRATION "
                    "or ~/.cache/lazyphase/calibration.json)")  # fmt: skip
    pl.add_argument("--jobs", help="also write one row per job to this CSV")
    pl.add_argument("--against", metavar="DIR", help="compare the expected cost with the "
                    "training jobs measured in DIR (a workflow run of this configuration)")
    pl.add_argument("--cores", type=int, default=1, help="cores of the run in --against")
    pl.add_argument("--schema", default=_default_schema())
    pl.set_defaults(func=_plan)
    c = sub.add_parser("calibrate", help="measure this machine's training throughput")
    c.add_argument("--device", action="append", choices=["cpu", "cuda"],
                   help="repeatable; default: cpu, and cuda when available")  # fmt: skip
    c.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    c.add_argument("--threads", type=int, default=1, help="torch threads (as the jobs use)")
    c.add_argument("--scale", type=float, default=1.0, help="multiply the timed steps")
    c.add_argument("--out", help="calibration file (default: as for plan)")
    c.add_argument("--from-runs", metavar="DIR", help="learn the step fractions per regime and "
                   "the rate from the finished runs in DIR (results/, logs/benchmarks/)")
    c.add_argument("--gpu-probe", action="store_true", help="measure the GD step's share of "
                   "the matmul peak (on a GPU if present, else the CPU)")
    c.set_defaults(func=_calibrate)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lazyphase", description=__doc__)
    p.add_argument("--version", action="version", version=f"lazyphase {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _add_file_commands(sub)
    _add_config_commands(sub)
    _add_budget_commands(sub)
    vf = sub.add_parser(
        "verify",
        help="check every file under results/ (checksums, schema, provenance, completeness)",
    )
    vf.add_argument("results", nargs="?", default="results", help="the results folder")
    vf.add_argument(
        "--config",
        help="the workflow configuration the results were made with (default: "
        "config.yaml beside the results folder), as with --replace-workflow-config",
    )
    vf.add_argument("--schema", default=_default_schema())
    vf.set_defaults(func=_verify)
    hl = sub.add_parser("headline", help="the README's headline numbers from the default run's tables")
    headline.add_arguments(hl)
    hl.set_defaults(func=headline.run)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lazyphase`` command."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, RunFileError, ConcentrationFileError, TableFileError, WriteError,
            FileNotFoundError, ValueError) as exc:  # fmt: skip
        print(f"lazyphase: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
