"""The README's headline numbers, written from the default run's tables.

``make docs-figures`` runs ``python -m lazyphase.pipeline.headline --copy-from results --write
README.md``: it copies the default run's figures into ``docs/figures/`` (one PNG per catalog figure
that ``config.yaml`` enables) and the tables the headline reads into ``docs/results/<experiment>/``
(the layout of ``results/``, so the same code reads either), then rewrites the part of README.md
between :data:`BEGIN` and :data:`END` with :func:`headline_block`. ``tests/test_readme.py``
regenerates the block from ``docs/results/`` and fails when README.md differs.

The block states, with bootstrap intervals over seeds: A2's threshold ``s*`` per scheme, A6's
function-space result, B1's boundary ``γ*`` per ``γ'`` against the theory lines, and B2's boundary
``s*`` per activation against ``s = 0``. Every label (scheme, layer, ``γ'``, counts) comes from the
tables; nothing is typed in.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from lazyphase.stats import NO_CROSSING
from lazyphase.store.files import TableFileError, read_table
from lazyphase.studies.catalog import FIGURES

BEGIN = "<!-- headline:begin (written by `python -m lazyphase.pipeline.headline`; do not edit) -->"
END = "<!-- headline:end -->"

#: The tables of the headline: key → (the figure whose experiment writes it, file name).
TABLES = {
    "threshold": ("theta_lazy_threshold", "threshold.csv"),
    "function_exponents": ("function_distance", "function_exponents.csv"),
    "phase_boundary": ("phase_diagram", "boundary.csv"),
    "deep_boundary": ("deep_phase_diagram", "boundary.csv"),
}


# ---- what the configuration draws ----------------------------------------------------------


def catalog_figures(config: Mapping[str, Any]) -> dict[str, str]:
    """``{figure name: experiment}`` of every figure ``config`` draws, in catalog order (A1 … C8).

    Raises:
        ValueError: a figure outside the catalog, or one drawn by two experiments (its PNG in
            ``docs/figures/`` would be ambiguous).
    """
    owner: dict[str, str] = {}
    for name, exp in (config.get("experiments") or {}).items():
        for fig in exp.get("figures") or []:
            if fig not in FIGURES:
                raise ValueError(f"experiments.{name}.figures: {fig!r} is not a catalog figure")
            if fig in owner:
                raise ValueError(
                    f"figure {fig!r} is drawn by experiments {owner[fig]!r} and {name!r}"
                )
            owner[fig] = name
    return {f: owner[f] for f in FIGURES if f in owner}


def table_paths(config: Mapping[str, Any], root: str | Path) -> dict[str, Path]:
    """``{key of TABLES: root/<experiment>/<file>}`` for the experiments of ``config``.

    Raises:
        ValueError: naming the figure when no experiment of ``config`` draws it.
    """
    figures = catalog_figures(config)
    missing = sorted({fig for fig, _ in TABLES.values()} - set(figures))
    if missing:
        raise ValueError(
            f"the headline needs experiments drawing {missing}; the configuration has none"
        )
    return {key: Path(root) / figures[fig] / file for key, (fig, file) in TABLES.items()}


def copy_results(config: Mapping[str, Any], results: str | Path, docs: str | Path) -> list[Path]:
    """Copy the figures ``config`` draws (``results/<exp>/figures/<fig>.png`` →
    ``docs/figures/<fig>.png``) and the headline's tables (→ ``docs/results/<exp>/``); PNGs in
    ``docs/figures/`` that ``config`` does not draw are removed. Returns the written paths.

    Raises:
        FileNotFoundError: naming every missing source file (nothing is copied then).
    """
    results, docs = Path(results), Path(docs)
    pairs = [(results / exp / "figures" / f"{fig}.png", docs / "figures" / f"{fig}.png")
             for fig, exp in catalog_figures(config).items()]  # fmt: skip
    pairs += [(src, docs / "results" / src.relative_to(results))
              for src in table_paths(config, results).values()]  # fmt: skip
    missing = [str(src) for src, _ in pairs if not src.is_file()]
    if missing:
        raise FileNotFoundError("missing results (run `make figures`): " + ", ".join(missing))
    keep = {dst for _, dst in pairs}
    for stale in sorted((docs / "figures").glob("*.png")):
        if stale not in keep:
            stale.unlink()
    for src, dst in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return [dst for _, dst in pairs]


def read_tables(paths: Mapping[str, Path]) -> dict[str, pd.DataFrame]:
    """The tables of :func:`table_paths` (provenance columns dropped)."""
    return {key: read_table(path) for key, path in paths.items()}


# ---- text ------------------------------------------------------------------------------------


def num(x: Any) -> str:
    """``x`` with 2 decimals and a typographic minus (``−0.08``; ``0.00``, never ``−0.00``)."""
    text = f"{float(x):.2f}"
    return ("0.00" if text == "-0.00" else text).replace("-", "−")


def grid_value(x: Any) -> str:
    """A grid coordinate as written in the configuration (``−0.5``, ``1``)."""
    return f"{float(x):g}".replace("-", "−")


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def estimate(value: Any, low: Any, high: Any, note: Any = None, where: str = "") -> str:
    """``value [low, high] (where)``; without an interval ``value (where; no interval: …)`` with
    the reason taken from ``note``."""
    if not (_missing(low) or _missing(high)):
        return f"{num(value)} [{num(low)}, {num(high)}]" + (f" ({where})" if where else "")
    parts = str(note or "").split("; ")
    why = next((p.split(" (")[0] for p in parts if p.startswith("no interval")), "no interval")
    return f"{num(value)} ({where + '; ' if where else ''}{why})"


def no_value(note: Any) -> str:
    """``none in the grid: <why>`` from the first clause of a row's note."""
    first = str(note).split("; ")[0] if not _missing(note) and str(note) else "no value"
    return "none" + first.removeprefix(NO_CROSSING).replace(":", " in the grid:", 1)


def _where(row: pd.Series, cols: Sequence[str]) -> str:
    """``tanh L=2 a``: the row's values of ``cols`` (``depth`` as ``L=``, ``s`` as ``s=``)."""
    fmt = {"depth": "L={}", "s": "s={}", "gamma_h": "γ_h={}"}
    out = []
    for c in cols:
        v = row[c]
        v = grid_value(v) if c in ("s", "gamma_h") else (int(v) if c == "depth" else v)
        out.append(fmt.get(c, "{}").format(v))
    return " ".join(out)


def largest_crossing(
    rows: pd.DataFrame, star: str, lazy: str, note: str, where: Sequence[str]
) -> str:
    """The row with the largest crossing ``star`` as ``value [low, high] (where)``.

    A row without a crossing counts as below every crossing when its ``lazy`` column is true
    (lazy on the whole side ``s > 0``) and above every one otherwise (it is then reported, with
    its note). With no crossing at all: the first row's note."""
    key = rows[star].where(rows[star].notna(), rows[lazy].map({True: -math.inf, False: math.inf}))
    if not len(rows) or key.isna().all():
        return "no rows"
    row = rows.loc[key.astype(float).idxmax()]
    if _missing(row[star]):
        return no_value(row[note]) + ("" if row[lazy] else f" ({_where(row, where)})")
    low, high = row[f"{star}_low"], row[f"{star}_high"]
    return estimate(row[star], low, high, row[note], _where(row, where))


def _count(flags: pd.Series) -> str:
    return f"{int(flags.astype(bool).sum())} of {len(flags)}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def theta_lazy_rows(threshold: pd.DataFrame, fexp: pd.DataFrame) -> list[list[str]]:
    """One row per scheme: A2's largest ``s*``, A6's largest ``s*_f`` and largest
    function-distance exponent at ``s > 0``, and how many groups are lazy at every ``s > 0``."""
    rows = []
    arch = ["activation", "depth"]
    for scheme, thr in threshold.groupby("scheme", sort=True):
        fthr = thr.drop_duplicates(["scheme", *arch])
        pos = fexp[(fexp["scheme"] == scheme) & (fexp["s"] > 0)]
        top = pos.loc[pos["slope"].idxmax()] if len(pos) else None
        exponent = (
            "no s > 0"
            if top is None
            else estimate(
                top["slope"], top["ci_low"], top["ci_high"], where=_where(top, [*arch, "s"])
            )
        )
        rows.append([
            f"`{scheme}`",
            largest_crossing(thr, "s_star", "lazy_side_negative", "note", [*arch, "layer_name"]),
            largest_crossing(fthr, "s_star_f", "lazy_side_negative_f", "note_f", arch),
            exponent,
            f"{_count(thr['lazy_side_negative'])} layers; "
            f"{_count(fthr['lazy_side_negative_f'])} networks",
        ])  # fmt: skip
    return rows


def _b1_theory(row: pd.Series) -> str:
    """The theory lines at the row's ``γ'``, and whether each lies in ``γ*``'s interval."""
    known = not (_missing(row["gamma_star_low"]) or _missing(row["gamma_star_high"]))

    def line(name: str, col: str) -> str:
        where = (" (inside)" if row[f"{col}_in_ci"] else " (outside)") if known else ""
        return f"{name} `γ = {grid_value(row[f'{col}_line'])}`{where}"

    if row["luo_line"] == row["scaling_line"]:
        return line("Luo and scaling:", "luo")
    nearer = "" if _missing(row["nearer"]) else f"; nearer: {row['nearer']}"
    return f"{line('Luo', 'luo')}, {line('scaling', 'scaling')}{nearer}"


def boundary_rows(phase: pd.DataFrame, deep: pd.DataFrame) -> list[list[str]]:
    """B1: one row per ``γ'`` (``γ*`` against the theory lines); B2: one row per activation and
    depth (the largest ``s*`` of every layer and ``γ_h`` against ``s = 0``)."""
    rows = []
    for _, r in phase.sort_values("gamma_prime").iterrows():
        star = (no_value(r["note"]) if _missing(r["gamma_star"]) else
                estimate(r["gamma_star"], r["gamma_star_low"], r["gamma_star_high"], r["note"]))  # fmt: skip
        rows.append([f"B1 `γ*`, `γ' = {grid_value(r['gamma_prime'])}`", star, _b1_theory(r)])
    for (act, depth), grp in deep.groupby(["activation", "depth"], sort=True):
        rows.append([
            f"B2 `s*`, {act} L={int(depth)}, largest of {len(grp)} (layer, γ_h)",
            largest_crossing(grp, "s_star", "linear_above_0", "note", ["layer_name", "gamma_h"]),
            f"`s* ≤ 0`: linear at every grid `s > 0` in {_count(grp['linear_above_0'])}",
        ])  # fmt: skip
    return rows


THETA_HEAD = (
    "scheme",
    "A2: largest `s*` (RD)",
    "A6: largest `s*_f` (function)",
    "A6: largest exponent at `s > 0`",
    "lazy at every grid `s > 0`",
)
BOUNDARY_HEAD = ("boundary", "measured", "theory (line inside or outside the interval)")


def headline_block(tables: Mapping[str, pd.DataFrame]) -> str:
    """The README block (markdown, without the markers) from the tables of :data:`TABLES`:
    ``threshold`` and ``function_exponents`` (A2, A6), ``phase_boundary`` (B1), ``deep_boundary``
    (B2), each as :func:`lazyphase.store.files.read_table` returns it."""
    theta = theta_lazy_rows(tables["threshold"], tables["function_exponents"])
    lines = [
        "Numbers from the default run (`config.yaml`; tables in [docs/results/](docs/results/)):",
        "estimate [low, high] is the bootstrap interval over seeds ([statistics](docs/statistics.md)).",
        "",
        "**Theta-lazy (A2, A6).** Theory: for `s > 0` every layer is lazy (RD exponent < 0, so",
        "`s* ≤ 0`) and the network stays at its kernel predictor (function-distance exponent < 0).",
        "",
        *_table(THETA_HEAD, theta),
        "",
        "**Phase boundaries (B1, B2)** against the theory lines.",
        "",
        *_table(BOUNDARY_HEAD, boundary_rows(tables["phase_boundary"], tables["deep_boundary"])),
    ]
    return "\n".join(lines) + "\n"


def replace_block(text: str, block: str) -> str:
    """``text`` with everything between the lines :data:`BEGIN` and :data:`END` replaced by
    ``block``.

    Raises:
        ValueError: when the markers are missing or out of order.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no block between {BEGIN!r} and {END!r}")
    return text[: start + len(BEGIN)] + "\n" + block + text[end:]


def current_block(text: str) -> str:
    """The block between the markers of ``text`` (as :func:`replace_block` writes it)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no block between {BEGIN!r} and {END!r}")
    return text[start + len(BEGIN) + 1 : end]


# ---- command ---------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m lazyphase.pipeline.headline`` (and ``lazyphase headline``)."""
    p.add_argument("--configfile", default="config.yaml", help="the default configuration")
    p.add_argument("--docs", default="docs", help="the docs folder (figures/ and results/)")
    p.add_argument("--copy-from", metavar="RESULTS",
                   help="first copy the figures and tables from this results folder into docs")  # fmt: skip
    p.add_argument("--write", metavar="FILE",
                   help="rewrite the block of FILE (e.g. README.md) instead of printing it")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Copy (``--copy-from``), then print the block or rewrite it in ``--write``."""
    import yaml

    with open(args.configfile) as fh:
        config = yaml.safe_load(fh) or {}
    if args.copy_from:
        copied = copy_results(config, args.copy_from, args.docs)
        print(
            f"copied {len(copied)} files from {args.copy_from}/ into {args.docs}/", file=sys.stderr
        )
    block = headline_block(read_tables(table_paths(config, Path(args.docs) / "results")))
    if not args.write:
        print(block, end="")
        return 0
    path = Path(args.write)
    path.write_text(replace_block(path.read_text(encoding="utf-8"), block), encoding="utf-8")
    print(f"{path}: headline block rewritten", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lazyphase.pipeline.headline``: exit 2 with the message on a missing or bad file."""
    p = argparse.ArgumentParser(prog="python -m lazyphase.pipeline.headline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_arguments(p)
    try:
        return run(p.parse_args(argv))
    except (OSError, ValueError, TableFileError) as exc:
        print(f"lazyphase: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
