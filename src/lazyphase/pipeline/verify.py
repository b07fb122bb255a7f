"""``lazyphase verify``: check every file the workflow made, and say how to rebuild each bad one.

Checked (docs/integrity.md): run files, data set files and A4 files (fletcher32 checksums,
content and attribute seals, schema version, shapes; run files also against the cell the
configuration gives them: provenance); parquet tables (page checksums); CSV tables and
figures (sha256 in ``results/<exp>/manifest.json``); and, with a configuration, completeness:
every file the configuration's ``all`` target needs exists.

Each problem is one line ``<file>: <what is wrong>; rebuild: snakemake ... -R <target>``;
``-R`` (``--forcerun``) reruns the job that makes ``<target>`` and everything downstream of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lazyphase.store.concentration import ConcentrationFileError, read_concentration
from lazyphase.store.files import TableFileError, check_manifest, read_manifest, read_table
from lazyphase.store.runs import RunFileError, load_run, read_datasets
from lazyphase.studies.catalog import FIGURES

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Problem:
    """One bad or missing file: its path (as Snakemake names it), what is wrong, and the
    Snakemake target whose job rebuilds it."""

    path: str
    what: str
    target: str

    def line(self, snakemake: str = "snakemake --cores 2") -> str:
        what = " ".join(self.what.split())
        return f"{self.path}: {what}; rebuild: {snakemake} -R {self.target}"


def rebuild_target(path: str) -> str:
    """The Snakemake target whose job writes ``path`` (``results/<exp>/...``): the batch
    folder for a run file, the refine (precision) folder for a bisection (precision round)
    file, else the file itself."""
    parts = Path(path).parts
    if len(parts) >= 4 and parts[0] == "results" and parts[2] in ("runs", "refine", "precision"):
        return str(Path(*parts[:4 if parts[2] == "runs" else 3]))
    return path


def _msg(exc: Exception, path: str) -> str:
    """A reader's message without its leading path and its "delete it and rerun" tail."""
    text = " ".join(str(exc).split())
    if f"{path}: " in text:
        text = text.split(f"{path}: ", 1)[1]
    return text.replace("; delete it and rerun the workflow to rebuild it", "").replace(
        "; delete it and rerun", ""
    )


def check_file(full: str, cell: Mapping[str, Any] | None = None, *, gram: bool = True) -> str | None:
    """What is wrong with the file ``full``, or None. ``cell``: the configured cell of a run
    file (provenance check)."""
    name = os.path.basename(full)
    try:
        if name.endswith(".h5") and name == "dataset.h5":
            read_datasets(full)
        elif name.endswith(".h5") and Path(full).parent.name == "concentration":
            read_concentration(full)
        elif name.endswith(".h5"):
            run = load_run(full, gram=gram)
            if cell is not None and run.cell != json.loads(json.dumps(cell)):
                diff = sorted(
                    k for k in set(cell) | set(run.cell) if run.cell.get(k) != cell.get(k)
                )
                return (
                    f"written for another cell than the configuration gives it (keys {diff} "
                    "differ: the configuration changed, or the file was copied from elsewhere)"
                )
        elif name.endswith((".parquet", ".csv")):
            read_table(full)
        elif name == MANIFEST:
            read_manifest(full)
    except (RunFileError, ConcentrationFileError, TableFileError) as exc:
        return _msg(exc, full)
    return None


def check_run_files(paths: Sequence[str], *, gram: bool = False) -> list[Problem]:
    """The problems of the run files ``paths`` (the check aggregation runs on its inputs)."""
    out = []
    for p in paths:
        if not os.path.exists(p):
            out.append(Problem(p, "missing run file", rebuild_target(p)))
        elif (what := check_file(p, gram=gram)) is not None:
            out.append(Problem(p, what, rebuild_target(p)))
    return out


def problems_of(exc: Exception, paths: Sequence[str]) -> list[Problem]:
    """The :class:`Problem` of a reader's error (its message starts with one of ``paths``)."""
    text = str(exc)
    for p in paths:
        if text.startswith(f"{p}: "):
            return [Problem(p, _msg(exc, p), rebuild_target(p))]
    return []


def raise_problems(problems: Sequence[Problem], error: type[Exception] = RunFileError) -> None:
    """Raise ``error`` listing every problem, one line each, when there are any."""
    if problems:
        raise error(
            f"{len(problems)} bad input file(s), nothing written (rebuild each with the command "
            "shown, or delete it and rerun the workflow):\n"
            + "\n".join(p.line() for p in problems)
        )


#: Tables written together by one rule (a figure needing one gets them all).
_RULE_OUTPUTS = (
    ("runs.parquet", "trajectory.parquet", "exponents.csv", "threshold.csv"),
    ("concentration.parquet", "concentration_summary.csv"),
    ("phase.csv", "boundary.csv"),
    ("landscape.parquet", "landscape_points.parquet"),
    ("cover.parquet", "cover_teacher.parquet"),
)
#: Tables a rule reads from (its inputs' tables).
_NEEDS = {"phase.csv": ("runs.parquet",)}


def experiment_products(name: str, exp: Mapping[str, Any]) -> list[str]:
    """The tables and figures the ``all`` target builds for experiment ``name``: what its
    manifest lists (the inputs of rule ``write_manifest``)."""
    tables: set[str] = set()
    todo = [FIGURES[f].input_paths("").values() for f in exp.get("figures", [])]
    stack = [t.lstrip("/") for group in todo for t in group]
    while stack:
        t = stack.pop()
        group = next((g for g in _RULE_OUTPUTS if t in g), (t,))
        for u in group:
            if u not in tables:
                tables.add(u)
                stack += _NEEDS.get(u, ())
    if exp.get("target_ci_width") is not None:
        tables.add("precision.csv")  # rule target_precision: the intervals against the target
    base = f"results/{name}"
    figs = [f"{base}/figures/{f}.{e}" for f in exp.get("figures", []) for e in ("pdf", "png")]
    return [f"{base}/{t}" for t in sorted(tables)] + figs


def expected_files(config: Mapping[str, Any], cells: pd.DataFrame) -> dict[str, Any]:
    """Every file the configuration's ``all`` target needs → its cell (run files) or None."""
    out: dict[str, Any] = {}
    for name, exp in config["experiments"].items():
        frame = cells[cells["experiment"] == name]
        kind = exp.get("kind", "train")
        base = f"results/{name}"
        if kind == "gram_concentration":
            for b in frame["batch"].unique():
                out[f"{base}/concentration/{b}.h5"] = None
        else:
            out[f"{base}/dataset.h5"] = None
            out.update(dict(zip(frame["path"], frame["params"])))
        out.update({p: None for p in experiment_products(name, exp)})
        if exp.get("figures"):
            out[f"{base}/{MANIFEST}"] = None
    return out


def verify_results(
    results: str | os.PathLike,
    config: Mapping[str, Any] | None = None,
    cells: pd.DataFrame | None = None,
) -> list[Problem]:
    """Every problem under ``results`` (a workflow's ``results/`` folder); with the validated
    ``config`` and its ``cells`` (:func:`lazyphase.pipeline.config.validated_grid`) also the
    files it needs that are missing."""
    results = Path(results)
    work = results.parent
    expected = expected_files(config, cells) if config is not None else {}
    found = sorted(
        str(p.relative_to(work)) for p in results.rglob("*") if p.is_file() and ".tmp-" not in p.name
    )
    problems = []
    for rel in found:
        full = str(work / rel)
        what = check_file(full, expected.get(rel))
        if what is not None:
            problems.append(Problem(rel, what, rebuild_target(rel)))
    found_set = set(found)
    for rel in sorted(expected):
        if rel not in found_set:
            problems.append(Problem(rel, "missing (the configuration needs it)", rebuild_target(rel)))
    problems += _manifest_problems(results, work, found, set(expected))
    for p in results.rglob("*.tmp-*"):
        rel = str(p.relative_to(work))
        problems.append(Problem(rel, "temporary file of an interrupted write (delete it)", rebuild_target(rel.split(".tmp-")[0])))
    return problems


def _manifest_problems(
    results: Path, work: Path, found: Iterable[str], expected: set[str]
) -> list[Problem]:
    out = []
    for exp_dir in sorted(p for p in results.iterdir() if p.is_dir()):
        manifest = exp_dir / MANIFEST
        rel_manifest = str(manifest.relative_to(work))
        listed: set[str] = set()
        if manifest.exists():
            try:
                for rel, what in check_manifest(manifest):
                    shown = str(Path(rel).resolve().relative_to(work.resolve()))
                    out.append(Problem(shown, what, rebuild_target(shown)))
                listed = {
                    str((exp_dir / k).resolve().relative_to(work.resolve()))
                    for k in read_manifest(manifest)["files"]
                }
            except TableFileError:
                continue  # reported by check_file
        prefix = str(exp_dir.relative_to(work)) + os.sep
        for rel in found:
            covered = rel.endswith(".csv") or f"{os.sep}figures{os.sep}" in rel
            if rel.startswith(prefix) and covered and rel in expected and rel not in listed:
                out.append(
                    Problem(
                        rel,
                        f"not listed in {rel_manifest} (its sha256 cannot be checked)",
                        rel_manifest,
                    )
                )
    return out
