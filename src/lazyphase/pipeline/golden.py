"""Golden numbers: the key results of the tiny workflows, stored with tolerances, so that a
change of science fails CI with the number's name, its stored value and its new value.

The numbers are read from the tables the workflow writes (:data:`NUMBERS`): thresholds and
their intervals, regime and function-space exponents, phase boundaries, ``n_eff`` of B3, A4's
concentration slopes and the C experiments' final test losses. Each is stored with a tolerance
measured, not guessed: the largest difference of that number between the reference run and
runs with other kernels (2 torch threads; ATen's and MKL's AVX2 code paths), times
:data:`FACTOR`, plus :data:`REL_FLOOR` of its size (docs/reproducibility.md, "Golden numbers").

``make golden`` runs the tiny workflows both ways and calls ``python -m lazyphase.pipeline.golden
update``, which prints what changed and rewrites ``tests/golden/tiny.json``;
``tests/test_golden.py`` calls :func:`compare` on the test session's tiny runs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lazyphase.cells import cell_schema
from lazyphase.store.files import read_table
from lazyphase.store.provenance import KEYS as PROVENANCE_KEYS

#: The compared columns of each table (those a table lacks are skipped).
NUMBERS: dict[str, tuple[str, ...]] = {
    "threshold.csv": ("s_star", "s_star_low", "s_star_high", "s_star_f", "s_star_f_low", "s_star_f_high"),
    "exponents.csv": ("slope", "ci_low", "ci_high"),
    "function_exponents.csv": ("slope", "ci_low", "ci_high"),
    "boundary.csv": tuple(f"{star}{end}" for star in ("gamma_star", "s_star", "gamma_star_f", "s_star_f")
                          for end in ("", "_low", "_high")),
    "phase.csv": ("S_w", "S_w_low", "S_w_high", "slope", "ci_low", "ci_high"),
    "condensation.csv": ("n_eff",),
    "concentration_summary.csv": ("slope", "ci_low", "ci_high", "median_rel_error"),
    "runs.parquet": ("test_loss_final",),
}
#: The experiments (name prefix) whose ``runs.parquet`` alone is compared: the C losses.
RUNS_OF = ("chizat",)
#: Columns that name a row besides the cell's keys.
ROW_KEYS = frozenset({"layer", "seed", "stage", "quantity", "criterion", "distance",
                      "gamma", "gamma_prime", "gamma_h", "predictor"})
#: Tolerance = FACTOR x (largest measured difference) + REL_FLOOR x |value| + ABS_FLOOR.
FACTOR = 100.0
REL_FLOOR = 1e-9  # the largest relative difference of any stored number across CPU kinds, 3.9e-10
ABS_FLOOR = 1e-12
DEFAULT_FILE = Path("tests") / "golden" / "tiny.json"


def _keys(frame: pd.DataFrame, values: Sequence[str]) -> list[str]:
    cell_keys = set(cell_schema()["properties"])
    skip = set(values) | set(PROVENANCE_KEYS) | {"note", "file"}
    # a key that is the same in every row names nothing (and would make every name long)
    return [c for c in frame.columns if c not in skip and (c in cell_keys or c in ROW_KEYS)
            and frame[c].nunique(dropna=False) > 1]  # fmt: skip


def _label(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in sorted(keys))


def table_numbers(frame: pd.DataFrame, prefix: str, values: Sequence[str]) -> dict[str, float]:
    """``{"<prefix> <column> [<key>=<value>, ...]": value}`` for every row and compared column.

    Rows that share every key (a table with per-replica rows and no seed column) are told
    apart by their position: ``#k`` after the keys."""
    cols = [c for c in values if c in frame.columns]
    keys = _keys(frame, cols)
    out: dict[str, float] = {}
    seen: dict[str, int] = {}
    for _, row in frame.iterrows():
        label = _label(row, keys)
        seen[label] = seen.get(label, -1) + 1
        if seen[label]:
            label += f", #{seen[label]}"
        for c in cols:
            out[f"{prefix} {c} [{label}]"] = float(row[c])
    return out


def _chizat_losses(path: Path) -> pd.DataFrame:
    runs = read_table(path)
    if "layer" in runs:
        runs = runs[runs["layer"] == runs["layer"].min()]
    # s and alpha follow from tau and the output scaling here: not names of their own
    derived = [c for c in ("file", "replica", "s", "alpha") if c in runs]
    return runs.drop_duplicates(["file", "replica"]).drop(columns=derived)


def key_numbers(results: str | Path) -> dict[str, float]:
    """Every golden number of one ``results/`` folder (every experiment in it)."""
    results = Path(results)
    out: dict[str, float] = {}
    for folder in sorted(p for p in results.iterdir() if p.is_dir()):
        for name, values in NUMBERS.items():
            path = folder / name
            # the C experiments: their losses only (no s axis, so no threshold to guard)
            if not path.exists() or (name == "runs.parquet") != folder.name.startswith(RUNS_OF):
                continue
            frame = _chizat_losses(path) if name == "runs.parquet" else read_table(path)
            out.update(table_numbers(frame, f"{folder.name}/{name}", values))
    return out


def _same(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


def tolerances(reference: Mapping[str, float], variants: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Each number's tolerance from its largest difference between ``reference`` and the
    ``variants`` (runs of the same workflow with other kernels)."""
    tol = {}
    for name, x in reference.items():
        diffs = [abs(v[name] - x) for v in variants
                 if name in v and not (math.isnan(x) or math.isnan(v[name]))]  # fmt: skip
        size = 0.0 if math.isnan(x) else abs(x)
        tol[name] = FACTOR * max(diffs, default=0.0) + REL_FLOOR * size + ABS_FLOOR
    return tol


def compare(numbers: Mapping[str, float], golden: Mapping[str, Any]) -> list[str]:
    """One line per golden number that moved past its tolerance, is missing, or is new."""
    stored = golden["numbers"]
    lines = []
    for name, entry in stored.items():
        old = math.nan if entry["value"] is None else entry["value"]
        if name not in numbers:
            lines.append(f"{name}: stored {old:.10g}, now missing")
        elif not _same(numbers[name], old, entry["tol"]):
            lines.append(f"{name}: stored {old:.10g}, now {numbers[name]:.10g} "
                         f"(tolerance {entry['tol']:.2g})")  # fmt: skip
    lines += [f"{name}: new, {numbers[name]:.10g} (not stored)" for name in numbers
              if name not in stored]  # fmt: skip
    return lines


def golden_record(numbers: Mapping[str, float], tol: Mapping[str, float], how: str) -> dict:
    """The stored file's content: how the tolerances were measured, and every number."""
    return {
        "how": how,
        "factor": FACTOR,
        "rel_floor": REL_FLOOR,
        "numbers": {k: {"value": None if math.isnan(v) else v, "tol": tol[k]} for k, v in sorted(numbers.items())},
    }


def read_golden(path: str | Path = DEFAULT_FILE) -> dict:
    with open(path) as f:
        return json.load(f)


def _numbers_of(folders: Sequence[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for folder in folders:
        out.update(key_numbers(folder))
    return out


def update(reference: Sequence[str], variants: Sequence[Sequence[str]], path: str | Path,
           how: str) -> list[str]:  # fmt: skip
    """Rewrite the golden file from ``reference`` (results folders) with tolerances measured
    against ``variants``; return the changes against the stored file (as :func:`compare`)."""
    numbers = _numbers_of(reference)
    tol = tolerances(numbers, [_numbers_of(v) for v in variants])
    path = Path(path)
    changes = compare(numbers, read_golden(path)) if path.exists() else ["(no stored file)"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(golden_record(numbers, tol, how), indent=1) + "\n")
    return changes


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lazyphase.pipeline.golden", description=__doc__)
    p.add_argument("command", choices=["check", "update"])
    p.add_argument("--results", nargs="+", required=True, help="results/ folders of the reference run")
    p.add_argument("--variant", nargs="+", action="append", default=[],
                   help="results/ folders of a run with other kernels (repeatable; update only)")  # fmt: skip
    p.add_argument("--file", default=str(DEFAULT_FILE))
    p.add_argument("--how", default="", help="update: how the variants were run (stored)")
    args = p.parse_args(argv)
    if args.command == "check":
        lines = compare(_numbers_of(args.results), read_golden(args.file))
        print("\n".join(lines) or f"every golden number of {args.file} within its tolerance")
        return 1 if lines else 0
    lines = update(args.results, args.variant, args.file, args.how)
    n = len(read_golden(args.file)["numbers"])
    print("\n".join(lines) or "no stored number changed")
    print(f"{args.file}: {n} numbers written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
