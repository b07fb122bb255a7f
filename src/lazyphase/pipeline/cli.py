"""Command line: ``lazyphase train-cell``, ``lazyphase inspect``, ``lazyphase verify`` and the
pipeline's steps."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lazyphase import __version__
from lazyphase.cells import ConfigError, load_cell
from lazyphase.core.model import layer_names
from lazyphase.store.concentration import ConcentrationFileError
from lazyphase.store.files import TableFileError
from lazyphase.store.h5 import WriteError
from lazyphase.store.runs import RunFileError, load_run


def _train_cell(args: argparse.Namespace) -> int:
    from lazyphase.pipeline.jobs import train_cells

    cell = load_cell(args.config)
    for line in train_cells([cell], [args.out], threads=args.threads, gpus=args.gpus):
        print(line)
    return 0


def format_run(path: str, max_rows: int = 12) -> str:
    """A readable summary of a run file: parameters, status and trajectories (the whole file
    is read, so every checksum is verified)."""
    run = load_run(path)
    a = run.attrs
    lines = [f"{path}  (schema {a['schema_version']}, lazyphase {a['lazyphase_version']})"]
    skip = {"config_json", "status", "complete", "schema_version", "lazyphase_version"}
    params = {k: v for k, v in sorted(a.items()) if k not in skip and k != "gram_normalization"}
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            v = np.array2string(v, precision=4, separator=", ")
        lines.append(f"  {k:<18} {v}")
    steps = run["trajectory/step"]
    rows = np.unique(np.linspace(0, len(steps) - 1, min(max_rows, len(steps))).round().astype(int))
    layers = layer_names(int(a["depth"]))
    for r, seed in enumerate(run["replicas/seed"]):
        lines.append(
            f"replica {r} (seed {seed}): status {a['status'][r]} at step "
            f"{run['replicas/final_step'][r]}, lr0 {run['replicas/lr0'][r]:.4g}, "
            f"output std at init {run['replicas/output_std0'][r]:.4g}"
        )
        head = f"  {'step':>7} {'t':>10} {'train':>10} {'test':>10} " + " ".join(
            f"{'RD(' + n + ')':>10}" for n in layers
        )
        lines.append(head)
        for i in rows:
            rd = " ".join(f"{x:10.3e}" for x in run["trajectory/rd"][r, i])
            lines.append(
                f"  {steps[i]:7d} {run['trajectory/t'][r, i]:10.3e} "
                f"{run['trajectory/train_loss'][r, i]:10.3e} "
                f"{run['trajectory/test_loss'][r, i]:10.3e} {rd}"
            )
    events = run.arrays.get("events")
    if events is not None and len(events):
        lines.append(
            f"safeguard events: {len(events)} (first: replica {events[0]['replica']}, "
            f"step {events[0]['step']}, {events[0]['kind'].decode()})"
        )
    return "\n".join(lines)


def _inspect(args: argparse.Namespace) -> int:
    print(format_run(args.file, args.rows))
    return 0


def _config_reference(args: argparse.Namespace) -> int:
    import yaml

    from lazyphase.pipeline.config import reference_markdown

    with open(args.schema) as fh:
        print(reference_markdown(yaml.safe_load(fh)), end="")
    return 0


def _default_schema() -> str:
    here = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"
    return str(here) if here.exists() else "workflow/schemas/config.schema.yaml"


def _validate_config(args: argparse.Namespace) -> int:
    import yaml

    from lazyphase.pipeline.config import validated_grid

    with open(args.schema) as fh:
        schema = yaml.safe_load(fh)
    with open(args.file) as fh:
        raw = yaml.safe_load(fh) or {}
    try:
        _, cells = validated_grid(raw, schema)
    except ConfigError as exc:
        raise ConfigError(f"{args.file}: {exc}") from None
    for name, frame in cells.groupby("experiment", sort=False):
        print(
            f"{name}: {len(frame)} cells in {frame['batch'].nunique()} jobs, "
            f"{sum(len(p['seeds']) for p in frame['params'])} replicas"
        )
    print(f"{args.file}: valid")
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lazyphase", description=__doc__)
    p.add_argument("--version", action="version", version=f"lazyphase {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train-cell", help="train every replica of one cell into a run file")
    t.add_argument("--config", required=True, help="CELL.yaml with the cell's parameters")
    t.add_argument("--out", required=True, help="the HDF5 run file to write")
    t.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    t.add_argument("--gpus", type=int, default=0, help="lease this many GPUs (0: CPU)")
    t.set_defaults(func=_train_cell)
    i = sub.add_parser("inspect", help="print a run file's parameters, status and trajectories")
    i.add_argument("file")
    i.add_argument("--rows", type=int, default=12, help="snapshots shown per replica")
    i.set_defaults(func=_inspect)
    r = sub.add_parser("config-reference", help="print the configuration reference (Markdown)")
    r.add_argument("--schema", default=_default_schema())
    r.set_defaults(func=_config_reference)
    v = sub.add_parser("validate-config", help="check a workflow config without running anything")
    v.add_argument("file")
    v.add_argument("--schema", default=_default_schema())
    v.set_defaults(func=_validate_config)
    c = sub.add_parser(
        "verify",
        help="check every file under results/ (checksums, schema, provenance, completeness)",
    )
    c.add_argument("results", nargs="?", default="results", help="the results folder")
    c.add_argument(
        "--config",
        help="the workflow configuration the results were made with (default: "
        "config.yaml beside the results folder), as with --replace-workflow-config",
    )
    c.add_argument("--schema", default=_default_schema())
    c.set_defaults(func=_verify)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lazyphase`` command."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, RunFileError, ConcentrationFileError, TableFileError, WriteError) as exc:
        print(f"lazyphase: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
