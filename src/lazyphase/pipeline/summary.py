"""The end-of-run summary: where the results are, the thresholds and boundaries, and how many
replicas diverged, for every experiment of the configuration that has results.

Printed by the workflow's ``onsuccess`` handler (workflow/rules/common.smk) and by
``lazyphase summary``. Reads only the small tables (``threshold.csv``, ``boundary.csv``,
``runs.parquet``); never raises (a table it cannot read is named in the text).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from lazyphase.store.files import TableFileError, read_table

REPORT_COMMAND = "snakemake --report report.html"
#: Columns that never name a group of a threshold or boundary row.
_NOT_KEYS = {"experiment", "note", "n_s", "n_crossings", "frac_boot_cross"}


def _num(x: Any) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "nan" if math.isnan(v) else f"{v:.3g}"


def _estimates(frame: pd.DataFrame, star: str, label: str) -> list[str]:
    """One line per row: the group, ``label = value [low, high]``, or the note why none."""
    cols = list(frame.columns)
    keys = [c for c in cols[: cols.index(star)] if c not in _NOT_KEYS]
    out = []
    for _, row in frame.iterrows():
        group = " ".join(f"{k}={row[k]}" for k in keys)
        note = row.get("note")
        note = "" if note is None or (isinstance(note, float) and math.isnan(note)) else str(note)
        value = row[star]
        if pd.isna(value):
            out.append(f"    {group}: no {label}" + (f" ({note})" if note else ""))
            continue
        low, high = row.get(f"{star}_low"), row.get(f"{star}_high")
        interval = "" if pd.isna(low) or pd.isna(high) else f" [{_num(low)}, {_num(high)}]"
        out.append(f"    {group}: {label} = {_num(value)}{interval}" + (f"; {note}" if note else ""))
    return out


def _statuses(folder: Path) -> str | None:
    """``N replicas: diverged k, ...`` from ``runs.parquet`` (and the bisection and precision rounds')."""
    parts = []
    for p in (folder / "runs.parquet", folder / "refine" / "runs.parquet",
              folder / "precision" / "runs.parquet"):
        if p.exists():
            t = read_table(p)
            if {"file", "replica", "status"} <= set(t.columns) and len(t):
                parts.append(t.drop_duplicates(["file", "replica"])[["status"]])
    if not parts:
        return None
    counts = pd.concat(parts)["status"].value_counts()
    total = int(counts.sum())
    diverged = int(counts.get("diverged", 0))
    rest = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "diverged")
    return f"  replicas: {total}, diverged {diverged}" + (f" ({rest})" if rest else "")


def _has_threshold(table: pd.DataFrame) -> bool:
    """Whether some row of ``threshold.csv`` had at least 2 finite exponents to cross between."""
    return "n_s" not in table or bool((pd.to_numeric(table["n_s"], errors="coerce") >= 2).any())


def _precision_line(table: pd.DataFrame) -> str:
    """One line on ``precision.csv``: how many intervals met the target, after how many rounds,
    and what stopped the others."""
    met = table["target_met"].astype(str).str.lower().eq("true")
    first = table.iloc[0]
    seeds = pd.to_numeric(table["n_seeds"], errors="coerce")
    why = table.loc[~met, "stop"].value_counts()
    rest = "; not met: " + ", ".join(f"{k} {v}" for k, v in why.items()) if len(why) else ""
    return (f"  precision (precision.csv): {int(met.sum())} of {len(table)} {first['target_on']} "
            f"intervals within {_num(first['target'])} after {int(first['rounds'])} round(s), "
            f"{_num(seeds.min())}-{_num(seeds.max())} seeds{rest}")  # fmt: skip


def summarize_experiment(name: str, exp: Mapping[str, Any], root: str | os.PathLike = ".") -> list[str]:
    """The summary lines of one experiment (empty when it has no results folder)."""
    folder = Path(root) / "results" / name
    if not folder.is_dir():
        return []
    kind = exp.get("kind", "train")
    lines = [f"{name} ({kind}): {folder}/"]
    figs = sorted(p.stem for p in (folder / "figures").glob("*.png"))
    if figs:
        lines.append(f"  figures: {folder}/figures/ ({', '.join(figs)})")
    try:
        status = _statuses(folder)
        if status:
            lines.append(status)
        thr = folder / "threshold.csv"
        table = read_table(thr) if thr.exists() else None
        # an experiment with fewer than 2 exponents per row (e.g. one s value per width, as
        # in the Chizat experiments) has no threshold to report: no line rather than a "none"
        if table is not None and _has_threshold(table):
            lines.append("  thresholds (threshold.csv: s* where the exponent crosses 0, "
                         "bootstrap interval):")  # fmt: skip
            lines += _estimates(table, "s_star", "s*")
        prec = folder / "precision.csv"
        if prec.exists():
            lines.append(_precision_line(read_table(prec)))
        bnd = folder / "boundary.csv"
        if bnd.exists():
            table = read_table(bnd)
            star, label = ("gamma_star", "gamma*") if "gamma_star" in table else ("s_star", "s*")
            lines.append(f"  boundary (boundary.csv: {label} per row, bootstrap interval):")
            lines += _estimates(table, star, label)
    except (TableFileError, KeyError, ValueError) as exc:
        lines.append(f"  (a table could not be read: {' '.join(str(exc).split())})")
    return lines


def summarize(config: Mapping[str, Any], root: str | os.PathLike = ".") -> str:
    """The summary of every experiment of ``config`` (the workflow configuration) that has a
    ``results/<experiment>/`` folder under ``root``."""
    body: list[str] = []
    try:
        for name, exp in (config.get("experiments") or {}).items():
            body += summarize_experiment(name, exp, root)
    except Exception as exc:  # the summary must never turn a finished run into a failure
        body.append(f"(summary incomplete: {type(exc).__name__}: {exc})")
    if not body:
        return "lazyphase: no results yet for the experiments of this configuration"
    head = (f"lazyphase: results under {Path(root) / 'results'}/; report with all figures: "
            f"{REPORT_COMMAND}; check every file: lazyphase verify")  # fmt: skip
    return "\n".join([head, *body])
