"""The pipeline's steps as plain functions (the Snakemake scripts only unpack and call these)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from lazyphase import stats as analysis
from lazyphase.pipeline.grid import slug
from lazyphase.pipeline.jobs import train_cells
from lazyphase.pipeline.verify import Problem, check_run_files, problems_of, raise_problems
from lazyphase.store import concentration as conc_store
from lazyphase.store.files import read_table, write_table, write_tables
from lazyphase.store.files import write_manifest as _write_manifest
from lazyphase.store.runs import RunFileError
from lazyphase.store.tables import collect
from lazyphase.studies.catalog import FIGURES
from lazyphase.studies.chizat import analysis as chizat
from lazyphase.studies.phase import analysis as phase
from lazyphase.studies.theta_lazy import concentration

log = logging.getLogger("lazyphase.pipeline")


def aggregate_experiment(
    paths: Sequence[str],
    experiment: str,
    outs: Mapping[str, str],
    *,
    n_boot: int = 1000,
    ci: float = 0.9,
    seed: int = 0,
) -> None:
    """Run files → ``runs`` (parquet), ``traj`` (parquet), ``exponents``, ``threshold`` (with the
    function-space ``s_star_f`` columns) and ``fexponents`` (the ``fdist`` exponents) (CSV).

    Every input is verified first (:func:`lazyphase.pipeline.verify.check_run_files`, the
    check of ``lazyphase verify``); any problem stops it, listing them all, before a table is
    written."""
    raise_problems(check_run_files(paths))  # everything but gram/theta, every file
    try:
        runs, traj = collect(paths, experiment)  # gram/theta's checksums are verified here
    except RunFileError as exc:
        raise_problems(problems_of(exc, paths))
        raise
    exps, boot = analysis.fit_exponents(runs, n_boot=n_boot, ci=ci, seed=seed)
    thr = analysis.thresholds(exps, boot, ci=ci)
    fexps, fthr = analysis.function_exponents(runs, n_boot=n_boot, ci=ci, seed=seed)
    thr = analysis.with_function_threshold(thr, fthr)
    for key in outs:
        os.makedirs(os.path.dirname(outs[key]) or ".", exist_ok=True)
    tables = {outs["runs"]: runs, outs["traj"]: traj, outs["exponents"]: exps,
              outs["threshold"]: thr}  # fmt: skip
    if "fexponents" in outs:
        tables[outs["fexponents"]] = fexps
    write_tables(tables)
    counts = runs.drop_duplicates(["file", "replica"])["status"].value_counts().to_dict()
    log.info("%s: %d run files, replicas by status %s", experiment, len(paths), counts)


def compute_concentration(
    cells: Sequence[Mapping[str, Any]], out: str, *, threads: int = 1
) -> None:
    """A4 for one (activation, depth, scheme): the cells' widths, ``len(seeds)`` draws each."""
    first = cells[0]
    widths = sorted({c["m"] for c in cells})
    table, limit = concentration.concentration_table(
        first["activation"],
        first["depth"],
        widths,
        len(first["seeds"]),
        scheme=first["scheme"],
        n=first["n"],
        d=first["d"],
        seed=first["data_seed"],
        threads=threads,
    )
    attrs = {k: first[k] for k in ("activation", "depth", "scheme", "n", "d", "data_seed")}
    conc_store.write_concentration(out, table, limit, attrs)
    log.info("%s: %d rows, lambda_S %.4g", out, len(table), limit["lambda_S"])


def aggregate_concentration(
    paths: Sequence[str], outs: Mapping[str, str], *, n_boot: int = 1000, ci: float = 0.9
) -> None:
    """A4 files → ``table`` (parquet, one row per width × draw × layer) and ``summary`` (CSV)."""
    parts, problems = [], []
    for p in paths:
        try:
            parts.append(conc_store.read_concentration(p)[0])
        except conc_store.ConcentrationFileError as exc:
            problems.append(Problem(p, " ".join(str(exc).split(": ", 1)[-1].split()), p))
    raise_problems(problems, conc_store.ConcentrationFileError)
    table = pd.concat(parts, ignore_index=True)
    summary = concentration.summarize(table, n_boot=n_boot, ci=ci)
    write_tables({outs["table"]: table, outs["summary"]: summary})
    slopes = summary.drop_duplicates(["activation", "depth", "layer"])
    for row in slopes.itertuples():
        log.info("%s L=%d %s: slope %.3f", row.activation, row.depth, row.layer_name, row.slope)


def refine_phase(
    cells: Sequence[Mapping[str, Any]],
    runs_path: str,
    out_dir: str,
    experiment: str,
    *,
    tol: float,
    rounds: int,
    dataset: str | None = None,
    threads: int = 1,
    gpus: int = 0,
    budget: Any = None,
) -> None:
    """B1 bisection rounds after the coarse grid: run files under ``out_dir/round<r>/`` and
    their ``runs`` rows in ``out_dir/runs.parquet`` (empty when nothing needed refining)."""
    os.makedirs(out_dir, exist_ok=True)
    runs = read_table(runs_path)
    new = bisect_boundary(
        cells, runs, out_dir, experiment, tol=tol, rounds=rounds, dataset=dataset, threads=threads,
        gpus=gpus, budget=budget,
    )  # fmt: skip
    write_table(new, os.path.join(out_dir, "runs.parquet"))
    log.info("%s: %d bisection cells", experiment, new.drop_duplicates(["scheme", "s"]).shape[0])


def bisect_boundary(
    cells: Sequence[Mapping[str, Any]],
    runs: pd.DataFrame,
    out_dir: str,
    experiment: str,
    *,
    tol: float = 0.05,
    rounds: int = 3,
    dataset: str | None = None,
    threads: int = 1,
    gpus: int = 0,
    budget: Any = None,
) -> pd.DataFrame:
    """Bisection in ``γ`` around the sign change of ``S_w``, one training round at a time.

    Each round adds, for every ``γ'`` whose bracket is still wider than ``2 tol``, the cells at
    the bracket's midpoint for every width of ``cells`` (copies of that ``γ'``'s cells with the
    new ``s``; all ``γ'`` of one width train in one batch) and writes their run files to
    ``out_dir/round<r>/m~<m>/``. Returns the ``runs`` rows of the new cells with a ``round``
    column (empty when nothing needs refining); ``runs`` is the coarse table.
    """
    templates: dict[tuple[int, str], Mapping[str, Any]] = {}
    for c in cells:
        templates.setdefault((c["m"], c["scheme"]), c)
    widths = sorted({m for m, _ in templates})
    table = runs.assign(round=runs.get("round", 0))
    new_parts = []
    for r in range(1, rounds + 1):
        mids = phase.next_gammas(table, tol)
        if not mids:
            log.info("round %d: every bracket is within +-%g; done", r, tol)
            break
        log.info("round %d: gamma midpoints %s", r, mids)
        paths = []
        for m in widths:
            batch = [
                {**templates[(m, sc)], "s": round(1.0 - g, 12)}
                for sc, g in mids.items()
                if (m, sc) in templates
            ]
            outs = [
                os.path.join(
                    out_dir,
                    f"round{r}",
                    f"m~{m}",
                    f"s~{slug(c['s'])}_scheme~{slug(c['scheme'])}.h5",
                )
                for c in batch
            ]
            train_cells(batch, outs, threads=threads, dataset=dataset, gpus=gpus, budget=budget)
            paths += outs
        part = collect(paths, experiment)[0].assign(round=r)
        new_parts.append(part)
        table = pd.concat([table, part], ignore_index=True)
    if not new_parts:
        return runs.iloc[0:0].assign(round=pd.Series(dtype=int))
    return pd.concat(new_parts, ignore_index=True)



def aggregate_phase(
    runs_path: str,
    refine_dir: str,
    outs: Mapping[str, str],
    *,
    n_boot: int = 1000,
    ci: float = 0.9,
    r2_min: float = 0.5,
) -> None:
    """Coarse + bisection ``runs`` → ``phase`` (S_w per (γ', γ)) and ``boundary`` (γ* per γ')."""
    coarse = read_table(runs_path).assign(round=0)
    fine = read_table(os.path.join(refine_dir, "runs.parquet"))
    runs = pd.concat([coarse, fine], ignore_index=True) if len(fine) else coarse
    table, boundary = phase.phase_table(runs, n_boot=n_boot, ci=ci, r2_min=r2_min)
    write_tables({outs["phase"]: table, outs["boundary"]: boundary})
    for r in boundary.itertuples():
        log.info(
            "gamma'=%g: gamma* = %.3f [%.3f, %.3f] (Luo line %.2f, scaling line %.2f; nearer: %s) %s",
            r.gamma_prime, r.gamma_star, r.gamma_star_low, r.gamma_star_high, r.luo_line,
            r.scaling_line, r.nearer, r.note,
        )  # fmt: skip


def _read(path: str) -> pd.DataFrame:
    return read_table(path)


def plot(figure: str, inputs: Mapping[str, str], out_pdf: str, out_png: str) -> None:
    """Draw ``figure`` (a name of :data:`~lazyphase.studies.catalog.FIGURES`) from the tables
    ``inputs`` (role → path)."""
    entry = FIGURES[figure]
    entry.function()(*[_read(inputs[role]) for role in entry.inputs], out_pdf, out_png)


def compute_landscape(paths: Sequence[str], outs: Mapping[str, str]) -> None:
    """C8: the test-loss landscapes of the run files → ``grid`` and ``points`` (parquet)."""
    raise_problems(check_run_files(paths))
    grid, points = chizat.landscape_tables(paths)
    _write_tables({"grid": grid, "points": points}, outs)


def compute_cover(paths: Sequence[str], outs: Mapping[str, str]) -> None:
    """C4: neuron paths and teacher directions → ``cover`` and ``teacher`` (parquet)."""
    raise_problems(check_run_files(paths))
    cover, teacher = chizat.cover_tables(paths)
    _write_tables({"cover": cover, "teacher": teacher}, outs)


def _write_tables(frames: Mapping[str, pd.DataFrame], outs: Mapping[str, str]) -> None:
    write_tables({outs[key]: frame for key, frame in frames.items()})


def write_manifest(paths: Sequence[str], out: str, *, code: str = "") -> None:
    """``results/<exp>/manifest.json``: the sha256 of the experiment's tables and figures."""
    doc = _write_manifest(out, paths, code=code)
    log.info("%s: %d files", out, len(doc["files"]))


def refine_deep_phase(
    cells: Sequence[Mapping[str, Any]],
    runs_path: str,
    out_dir: str,
    experiment: str,
    *,
    tol: float,
    rounds: int,
    dataset: str | None = None,
    threads: int = 1,
    gpus: int = 0,
    budget: Any = None,
) -> None:
    """B2 bisection rounds in ``s`` after the coarse grid: run files under ``out_dir/round<r>/``
    and their ``runs`` rows in ``out_dir/runs.parquet`` (empty when nothing needed refining)."""
    from lazyphase.studies.deep_phase import analysis as deep_phase

    os.makedirs(out_dir, exist_ok=True)
    table = read_table(runs_path).assign(round=0)
    templates: dict[tuple, Mapping[str, Any]] = {}
    for c in cells:
        templates.setdefault((c["m"], c["activation"], c["depth"], c["scheme"]), c)
    shapes = sorted({(m, act, L) for m, act, L, _ in templates})
    new_parts = []
    for r in range(1, rounds + 1):
        mids = deep_phase.next_s(table, tol)
        if not mids:
            log.info("round %d: every bracket is within +-%g; done", r, tol)
            break
        log.info("round %d: %d midpoints %s", r, len(mids), mids)
        paths = []
        for m, act, depth in shapes:
            batch = [
                {**templates[(m, act, depth, p["scheme"])], "s": p["s"]}
                for p in mids
                if (p["activation"], p["depth"]) == (act, depth)
                and (m, act, depth, p["scheme"]) in templates
            ]
            if not batch:
                continue
            outs = [
                os.path.join(
                    out_dir, f"round{r}", f"m~{m}_activation~{act}_depth~{depth}",
                    f"s~{slug(c['s'])}_scheme~{slug(c['scheme'])}.h5",
                )
                for c in batch
            ]  # fmt: skip
            train_cells(batch, outs, threads=threads, dataset=dataset, gpus=gpus, budget=budget)
            paths += outs
        part = collect(paths, experiment)[0].assign(round=r)
        new_parts.append(part)
        table = pd.concat([table, part], ignore_index=True)
    new = (
        pd.concat(new_parts, ignore_index=True)
        if new_parts
        else table.iloc[0:0].assign(round=pd.Series(dtype=int))
    )
    write_table(new, os.path.join(out_dir, "runs.parquet"))
    log.info("%s: %d bisection cells", experiment, new.drop_duplicates(["scheme", "s"]).shape[0])


def aggregate_deep_phase(
    runs_path: str,
    refine_dir: str,
    outs: Mapping[str, str],
    *,
    n_boot: int = 1000,
    ci: float = 0.9,
    r2_min: float = 0.5,
) -> None:
    """B2: coarse + bisection ``runs`` → ``deep_phase`` (the exponent of every layer per
    ``(γ_h, s)``) and ``deep_boundary`` (``s*`` of every layer per ``γ_h``)."""
    from lazyphase.studies.deep_phase import analysis as deep_phase

    coarse = read_table(runs_path).assign(round=0)
    fine = read_table(os.path.join(refine_dir, "runs.parquet"))
    runs = pd.concat([coarse, fine], ignore_index=True) if len(fine) else coarse
    table, boundary = deep_phase.deep_phase_table(runs, n_boot=n_boot, ci=ci, r2_min=r2_min)
    write_tables({outs["phase"]: table, outs["boundary"]: boundary})
    for r in boundary.itertuples():
        log.info(
            "%s L=%d %s gamma_h=%g: s* = %.3f [%.3f, %.3f] linear above 0: %s %s",
            r.activation, r.depth, r.layer_name, r.gamma_h, r.s_star, r.s_star_low,
            r.s_star_high, r.linear_above_0, r.note,
        )  # fmt: skip


def compute_neurons(paths: Sequence[str], outs: Mapping[str, str], *, n_bins: int = 72) -> None:
    """B3: the neurons (orientation, amplitude) at init and end, the learned function on the
    circle and the effective number of directions → ``neurons``, ``circle`` (parquet) and
    ``condensation`` (CSV)."""
    from lazyphase.studies.phase import condensation

    raise_problems(check_run_files(paths))
    neurons, circle = condensation.neuron_tables(paths)
    summary = condensation.condensation_summary(neurons, n_bins=n_bins)
    write_tables({outs["neurons"]: neurons, outs["circle"]: circle,
                  outs["condensation"]: summary})  # fmt: skip
    for r in summary.itertuples():
        log.info("gamma=%g seed %d %s: n_eff = %.2f", r.gamma, r.seed, r.stage, r.n_eff)
