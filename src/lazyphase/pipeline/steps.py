"""The pipeline's steps as plain functions (the Snakemake scripts only unpack and call these)."""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from lazyphase import stats as analysis
from lazyphase.pipeline import precision
from lazyphase.pipeline.budget import job_seconds, throughput_for
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


def _b1_midpoints(
    table: pd.DataFrame, tol: float, criteria: Sequence[str] = ("rd",)
) -> list[dict[str, Any]]:
    """B1's bisection step as cells ``{scheme, s}`` (``s = 1 − γ``) for the ``criteria``."""
    points = phase.bisection_points(table, tol, criteria)
    return [{"scheme": sc, "s": round(1.0 - g, 12)} for sc, g in points]


def _b2_midpoints(
    table: pd.DataFrame, tol: float, criteria: Sequence[str] = ("rd",)
) -> list[dict[str, Any]]:
    """B2's bisection step as cells ``{activation, depth, scheme, s}`` for the ``criteria``."""
    from lazyphase.studies.deep_phase import analysis as deep_phase

    return deep_phase.next_s(table, tol, criteria)


def _b2_table(runs: pd.DataFrame, **kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    from lazyphase.studies.deep_phase import analysis as deep_phase

    return deep_phase.deep_phase_table(runs, **kw)


#: study → (bisection step, (phase table, boundary table) from the runs). B1 bisects in
#: ``γ = 1 − s`` per ``luo:γ'`` scheme; B2 in ``s`` per (activation, depth, ``deep:γ_h``, layer).
BOUNDARY_STUDIES: dict[str, tuple[Callable, Callable]] = {
    "phase": (_b1_midpoints, lambda runs, **kw: phase.phase_table(runs, **kw)),
    "deep_phase": (_b2_midpoints, _b2_table),
}


def refine_boundary(
    study: str,
    cells: Sequence[Mapping[str, Any]],
    runs_path: str,
    out_dir: str,
    experiment: str,
    *,
    tol: float,
    rounds: int,
    refine_on: Sequence[str] = ("rd",),
    **train_kw: Any,
) -> None:
    """Bisection rounds after the coarse grid of a boundary ``study`` (:data:`BOUNDARY_STUDIES`)
    around the sign changes of every criterion of ``refine_on`` (``rd``, ``fdist``,
    ``fdist_conv``): run files under ``out_dir/round<r>/`` and their ``runs`` rows in
    ``out_dir/runs.parquet`` (empty when nothing needed refining). ``train_kw`` goes to
    :func:`train_cells`."""
    os.makedirs(out_dir, exist_ok=True)
    step = BOUNDARY_STUDIES[study][0]

    def midpoints(table: pd.DataFrame, tol: float) -> list[dict[str, Any]]:
        return step(table, tol, tuple(refine_on))

    runs = read_table(runs_path)
    new = bisect_boundary(
        cells, runs, out_dir, experiment, tol=tol, rounds=rounds, midpoints=midpoints, **train_kw
    )
    write_table(new, os.path.join(out_dir, "runs.parquet"))
    log.info("%s: %d bisection cells", experiment, new.drop_duplicates(["scheme", "s"]).shape[0])


def _midpoint_batches(
    cells: Sequence[Mapping[str, Any]], points: Sequence[Mapping[str, Any]]
) -> dict[tuple, list[dict[str, Any]]]:
    """The cells of every width of ``cells`` at the new ``points`` (each point: the fields that
    pick a template cell, plus ``s``), batched by width and the point's fields other than
    ``scheme`` and ``s`` (one training job per batch; the batch key names its folder)."""
    batches: dict[tuple, list[dict[str, Any]]] = {}
    for p in points:
        match = sorted(k for k in p if k != "s")
        shape = [k for k in match if k != "scheme"]
        seen: set[int] = set()
        for c in cells:
            if c["m"] in seen or any(c[k] != p[k] for k in match):
                continue
            seen.add(c["m"])  # the first cell of a width is its template
            key = (("m", c["m"]), *((k, p[k]) for k in shape))
            batches.setdefault(key, []).append({**c, "s": p["s"]})
    return dict(sorted(batches.items()))


def bisect_boundary(
    cells: Sequence[Mapping[str, Any]],
    runs: pd.DataFrame,
    out_dir: str,
    experiment: str,
    *,
    tol: float = 0.05,
    rounds: int = 3,
    midpoints: Callable[[pd.DataFrame, float], list[dict[str, Any]]] = _b1_midpoints,
    **train_kw: Any,
) -> pd.DataFrame:
    """Bisection around the sign change of a boundary, one training round at a time.

    Each round asks ``midpoints(table, tol)`` for the points whose bracket is still wider than
    ``2 tol`` (default: B1's, in ``γ`` per ``γ'``), trains those points at every width of
    ``cells`` (copies of the matching cells with the new ``s``) and writes their run files to
    ``out_dir/round<r>/<batch>/``. Returns the ``runs`` rows of the new cells with a ``round``
    column (empty when nothing needs refining); ``runs`` is the coarse table.
    """
    table = runs.assign(round=runs.get("round", 0))
    new_parts = []
    for r in range(1, rounds + 1):
        points = midpoints(table, tol)
        if not points:
            log.info("round %d: every bracket is within +-%g; done", r, tol)
            break
        log.info("round %d: %d midpoints %s", r, len(points), points)
        paths = []
        for key, batch in _midpoint_batches(cells, points).items():
            folder = "_".join(f"{k}~{slug(v)}" for k, v in key)
            outs = [
                os.path.join(
                    out_dir, f"round{r}", folder, f"s~{slug(c['s'])}_scheme~{slug(c['scheme'])}.h5"
                )
                for c in batch
            ]
            train_cells(batch, outs, **train_kw)
            paths += outs
        part = collect(paths, experiment)[0].assign(round=r)
        new_parts.append(part)
        table = pd.concat([table, part], ignore_index=True)
    if not new_parts:
        return runs.iloc[0:0].assign(round=pd.Series(dtype=int))
    return pd.concat(new_parts, ignore_index=True)


def aggregate_boundary(
    study: str,
    runs_path: str,
    refine_dir: str,
    outs: Mapping[str, str],
    *,
    n_boot: int = 1000,
    ci: float = 0.9,
    r2_min: float = 0.5,
    refine_on: Sequence[str] = ("rd",),
    precision_dir: str | None = None,
) -> None:
    """Coarse + bisection ``runs`` of a boundary ``study`` → ``outs["phase"]`` (B1: ``S_w`` per
    (γ', γ); B2: every layer's exponent per (γ_h, s); both with the function-space exponents)
    and ``outs["boundary"]`` (B1: γ* per γ'; B2: ``s*`` of every layer per γ_h; both with the
    function-space boundaries and ``refined_on``, the bisection's criteria). ``precision_dir``:
    also the precision rounds' runs (rule ``target_precision``), whose ``round`` counts on after
    the bisection's."""
    coarse = read_table(runs_path).assign(round=0)
    parts = [coarse]
    for folder in filter(None, (refine_dir, precision_dir)):
        fine = read_table(os.path.join(folder, "runs.parquet"))
        if len(fine):
            last = max(int(p["round"].max()) for p in parts)
            parts.append(fine.assign(round=fine["round"] + (last if folder == precision_dir else 0)))
    runs = pd.concat(parts, ignore_index=True)
    table, boundary = BOUNDARY_STUDIES[study][1](
        runs, n_boot=n_boot, ci=ci, r2_min=r2_min, refine_on=tuple(refine_on)
    )
    write_tables({outs["phase"]: table, outs["boundary"]: boundary})
    for row in boundary.to_dict("records"):
        log.info("boundary: %s", ", ".join(f"{k}={_short(v)}" for k, v in row.items()))


def _short(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


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


def compute_kernel_baselines(paths: Sequence[str], outs: Mapping[str, str]) -> None:
    """Run files → ``kernel_baselines`` (CSV): the test loss of the network, the converged
    ``Θ0`` predictor, the after kernel and the infinite-width NTK per replica."""
    from lazyphase.studies.kernels.baselines import baseline_table

    raise_problems(check_run_files(paths))
    table = baseline_table(paths)
    write_tables({outs["baselines"]: table})
    cols = [c for c in table.columns if c.startswith("test_loss_")]
    top = table[table["m"] == table["m"].max()].groupby(["scheme", "s"])[cols].median()
    for key, row in top.iterrows():
        log.info("m=%d %s: %s", table["m"].max(), key,
                 ", ".join(f"{c[10:]}={v:.4g}" for c, v in row.items()))  # fmt: skip


def compute_deep_condensation(paths: Sequence[str], outs: Mapping[str, str]) -> None:
    """B2 run files → ``deep_condensation`` (CSV): ``n_eff`` of every hidden layer's incoming
    weights at init and at the end."""
    from lazyphase.studies.deep_phase.condensation import deep_condensation_table

    raise_problems(check_run_files(paths))
    table = deep_condensation_table(paths)
    write_tables({outs["condensation"]: table})
    med = table.groupby(["gamma_h", "s", "layer_name"])["n_eff_ratio"].median()
    for key, v in med.items():
        log.info("gamma_h=%g s=%g %s: n_eff end/init %.3f", *key, v)


def _cpu_hours() -> float:
    """CPU-hours this process (and its children) used so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime) / 3600.0


def _hours_per_seed(cells: Sequence[Mapping[str, Any]], points: list[dict[str, Any]]) -> float:
    """Upper-bound CPU-hours of one more seed at every point and width of a cell group (the
    cost model of :mod:`lazyphase.pipeline.budget`, every replica at ``max_steps``)."""
    per = 0.0
    for batch in _midpoint_batches(cells, points).values():
        one = [{**c, "seeds": [0]} for c in batch]
        tp = throughput_for(one, None)
        per += job_seconds(one, tp) - tp.job_s
    return per / 3600.0


def _at_widths(
    cells: Sequence[Mapping[str, Any]], points: list[dict[str, Any]], widths: set[int]
) -> dict[tuple, list[dict[str, Any]]]:
    """:func:`_midpoint_batches` of ``points`` at every width of ``cells`` and at ``widths``
    (copies of the largest width's cells: the widths the precision rounds added)."""
    base = _midpoint_batches(cells, points)
    top = max(c["m"] for c in cells)
    out = dict(base)
    for m in sorted(widths - {c["m"] for c in cells}):
        for key, batch in base.items():
            if key[0][1] == top:
                out[(("m", m), *key[1:])] = [{**c, "m": m} for c in batch]
    return out


def _precision_cells(
    cells: Sequence[Mapping[str, Any]],
    table: pd.DataFrame,
    todo: pd.DataFrame,
    target: precision.Target,
    widths: list[int],
) -> dict[tuple, list[dict[str, Any]]]:
    """The cells of one precision round, batched like the bisection's (by width and shape):
    every point and width of a group that gets more seeds, with only the new seeds; at a width
    added for leverage (the next of ``widths``), with every seed of the group."""
    batches: dict[tuple, list[dict[str, Any]]] = {}
    for g in todo.to_dict("records"):
        points = precision.group_points(table, g, target.on)
        sel = table["s"].isin([p["s"] for p in points])
        for k in precision.GROUP_KEYS[target.on]:
            sel &= table[k] == g[k]
        have = [int(x) for x in sorted(table.loc[sel, "seed"].unique())]
        add = precision.new_seeds(have, int(g["n_seeds_next"]))
        grown = {int(m) for m in table.loc[sel, "m"].unique()}
        for key, batch in _at_widths(cells, points, grown).items():
            batches.setdefault(key, []).extend({**c, "seeds": add} for c in batch)
        if g["add_width"] and widths:
            for key, batch in _at_widths(cells, points, {widths[0]}).items():
                if key[0][1] == widths[0]:
                    batches.setdefault(key, []).extend({**c, "seeds": [*have, *add]} for c in batch)
    return dict(sorted(batches.items()))


def precision_rounds(
    study: str,
    cells: Sequence[Mapping[str, Any]],
    runs: pd.DataFrame,
    out_dir: str,
    experiment: str,
    target: precision.Target,
    *,
    n_boot: int = 1000,
    ci: float = 0.9,
    **train_kw: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rounds of extra seeds (and widths) until every interval on ``target.on`` meets
    ``target.ci_width`` or its cell group hits a cap (:func:`precision.next_round`).

    ``runs``: the coarse (and bisection) rows; new run files go to ``out_dir/round<r>/<batch>/``.
    Returns ``(new runs rows with a round column, precision.csv's table)``."""
    table = runs.assign(round=runs.get("round", 0))
    widths = [m for m in target.widths if m not in set(c["m"] for c in cells)]
    new_parts, spent, start, rounds_run = [], 0.0, _cpu_hours(), 0
    for r in range(1, target.rounds + 1):
        groups = precision.cell_groups(
            precision.intervals(study, target.on, table, n_boot=n_boot, ci=ci), target.on)
        costs = [_hours_per_seed(cells, precision.group_points(table, g, target.on))
                 for g in groups.to_dict("records")]  # fmt: skip
        dec = precision.next_round(
            groups, groups["n_seeds"], target=target.ci_width, max_seeds=target.max_seeds,
            growth=target.growth, cpu_hours_used=spent, cpu_hours_per_seed=costs,
            cpu_hours=target.cpu_hours, widths_left=len(widths))  # fmt: skip
        todo = dec[dec["stop"] == ""]
        log.info("precision round %d: %s", r, dec["stop"].replace("", "more seeds").value_counts().to_dict())
        if todo.empty:
            break
        paths = []
        for key, batch in _precision_cells(cells, table, todo, target, widths).items():
            folder = "_".join(f"{k}~{slug(v)}" for k, v in key)
            outs = [os.path.join(out_dir, f"round{r}", folder,
                                 f"s~{slug(c['s'])}_scheme~{slug(c['scheme'])}.h5") for c in batch]  # fmt: skip
            train_cells(batch, outs, **train_kw)
            paths += outs
        if todo["add_width"].any():
            widths = widths[1:]
        part = collect(paths, experiment)[0].assign(round=r)
        new_parts.append(part)
        table = pd.concat([table, part], ignore_index=True)
        spent, rounds_run = _cpu_hours() - start, r
    final = precision.intervals(study, target.on, table, n_boot=n_boot, ci=ci)
    groups = precision.cell_groups(final, target.on)
    dec = precision.next_round(groups, groups["n_seeds"], target=target.ci_width,
                               max_seeds=target.max_seeds, growth=target.growth,
                               cpu_hours_used=spent, cpu_hours=target.cpu_hours)  # fmt: skip
    summary = precision.precision_table(final, dec, target, rounds_run).assign(cpu_hours=spent)
    new = pd.concat(new_parts, ignore_index=True) if new_parts else runs.iloc[0:0].assign(
        round=pd.Series(dtype=int))  # fmt: skip
    return new, summary


def target_precision(
    study: str,
    cells: Sequence[Mapping[str, Any]],
    runs_path: str,
    out_dir: str,
    table_path: str,
    experiment: str,
    target: Mapping[str, Any],
    *,
    refine_dir: str | None = None,
    n_boot: int = 1000,
    ci: float = 0.9,
    **train_kw: Any,
) -> None:
    """Rule ``target_precision``: the coarse ``runs`` (and B1/B2's bisection rows under
    ``refine_dir``) → precision rounds (:func:`precision_rounds`): run files and
    ``out_dir/runs.parquet``, and the table ``table_path`` (``precision.csv``). ``target``: the
    experiment's configuration (its ``target_*`` keys)."""
    os.makedirs(out_dir, exist_ok=True)
    tgt = precision.target_of(target, experiment)
    runs = read_table(runs_path).assign(round=0)
    if refine_dir:
        fine = read_table(os.path.join(refine_dir, "runs.parquet"))
        runs = pd.concat([runs, fine], ignore_index=True) if len(fine) else runs
    new, summary = precision_rounds(study, cells, runs, out_dir, experiment, tgt,
                                    n_boot=n_boot, ci=ci, **train_kw)  # fmt: skip
    write_tables({os.path.join(out_dir, "runs.parquet"): new, table_path: summary})
    met = int(summary["target_met"].sum())
    log.info("%s: %d of %d intervals within %g", experiment, met, len(summary), tgt.ci_width)



def check_coordinates(out_dir: str) -> None:
    """Rule ``check_coordinates``: the default coordinate check under ``out_dir``
    (:func:`lazyphase.studies.coord_check.check.check_coordinates`)."""
    from lazyphase.studies.coord_check.check import check_coordinates as run

    run(out_dir)
