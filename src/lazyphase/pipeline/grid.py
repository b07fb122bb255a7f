"""Experiments → grid cells → training batches, and the paths of their files.

An experiment of ``config.yaml`` has a ``grid`` (cell keys → lists of values), ``seeds``
(replicas of every cell), ``fixed`` settings (any cell key) and ``batch_over``: the grid keys
whose cells are trained together in one job (they must keep the tensor shapes: e.g. ``s`` and
``scheme``) and ``exclude``: partial grid points (e.g. ``{depth: 2, m: 1024}``) left out.
The run file of a cell is ``results/<experiment>/runs/<job>/<cell>.h5``, where ``<job>`` is the
batch, or ``<batch>_part~<k>`` when the configuration's job budget splits the batch into several
jobs of whole cells (:mod:`lazyphase.pipeline.budget`, docs/scale.md).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from lazyphase.cells import ConfigError, validate_cell
from lazyphase.core.schemes import deep_scheme, luo_scheme
from lazyphase.core.training.batch import BATCH_KEYS
from lazyphase.pipeline.budget import Budget, Throughput, budget_from_config, split_batch
from lazyphase.pipeline.precision import target_of
from lazyphase.studies.catalog import kind_figures


def slug(value: Any) -> str:
    """A file-name-safe rendering of a grid value (``uniform:0.25`` → ``uniform-0.25``)."""
    if isinstance(value, Mapping):
        digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]
        return f"custom-{digest}"
    if isinstance(value, float):
        value = f"{value:g}"
    return re.sub(r"[^A-Za-z0-9.+-]", "-", str(value))


def _name(keys: list[str], cell: Mapping[str, Any]) -> str:
    return "_".join(f"{k}~{slug(cell[k])}" for k in keys) or "all"


def _check_experiment(
    where: str,
    grid: Mapping[str, Any],
    fixed: Mapping[str, Any],
    batch_over: list[str],
    exclude: list[Mapping[str, Any]],
) -> None:
    """Raise :class:`ConfigError` for an empty grid, a grid key without a list of values or also
    in ``fixed``, a ``batch_over`` key that changes tensor shapes (``batch_over``: ``[]`` for
    cells that are not trained) and an ``exclude`` entry naming a key outside the grid."""
    if not grid:
        raise ConfigError(f"{where}.grid: empty grid; give at least one key with a list of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"{where}.grid.{key}: needs a non-empty list of values, got {values!r}"
            )
        if key in fixed:
            raise ConfigError(f"{where}: key {key!r} is both in grid and in fixed")
    unknown = [k for k in batch_over if k in BATCH_KEYS]
    if unknown:
        raise ConfigError(
            f"{where}.batch_over: {unknown} change tensor shapes or the trainer and cannot be "
            f"batched; allowed: any grid key except {', '.join(BATCH_KEYS)}"
        )
    for i, ex in enumerate(exclude):
        bad = [k for k in ex if k not in grid]
        if bad:
            raise ConfigError(
                f"{where}.exclude[{i}]: keys {bad} are not grid keys ({', '.join(grid)})"
            )


def expand_experiment(name: str, exp: Mapping[str, Any], *, trains: bool = True) -> pd.DataFrame:
    """The validated cells of one experiment, one row each.

    Columns: ``experiment``, ``batch``, ``cell``, ``path`` and ``params`` (the full validated
    cell dict). ``trains``: the batches are trained together, so ``batch_over`` may only name
    keys that keep the tensor shapes. Raises :class:`ConfigError` naming the experiment, cell and key.
    """
    grid = dict(exp.get("grid") or {})
    fixed = dict(exp.get("fixed") or {})
    where = f"experiments.{name}"
    batch_over = list(exp.get("batch_over", ["s", "scheme"]))
    exclude = list(exp.get("exclude") or [])
    _check_experiment(where, grid, fixed, batch_over if trains else [], exclude)
    keys = list(grid)
    batch_keys = [k for k in keys if k not in batch_over]
    cell_keys = [k for k in keys if k in batch_over]
    rows = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, combo))
        if any(all(point[k] == v for k, v in ex.items()) for ex in exclude):
            continue
        raw = {**fixed, **point}
        if "seeds" in exp:
            raw["seeds"] = exp["seeds"]
        batch, cell = _name(batch_keys, raw), _name(cell_keys, raw)
        params = validate_cell(raw, where=f"{where} cell {batch}/{cell}: ")
        rows.append(
            dict(
                experiment=name,
                batch=batch,
                cell=cell,
                path=f"results/{name}/runs/{batch}/{cell}.h5",
                params=params,
            )
        )
    df = pd.DataFrame(rows)
    dup = df[df.duplicated(["batch", "cell"])]
    if len(dup):
        raise ConfigError(
            f"{where}.grid: repeated values give the same cell {dup.iloc[0]['cell']!r}"
        )
    return df


def luo_grid(name: str, exp: Mapping[str, Any]) -> dict[str, Any]:
    """A ``phase_diagram`` experiment in Luo et al.'s coordinates → an ordinary training grid.

    The grid gives ``gamma`` (``γ``) and ``gamma_prime`` (``γ'``) instead of ``s`` and ``scheme``;
    they become ``s = 1 − γ`` and ``scheme = luo:γ'`` (docs/conventions.md §2), in that order, so the
    cells are the ``train`` cells of the same point."""
    where = f"experiments.{name}"
    grid = dict(exp.get("grid") or {})
    missing = [k for k in ("gamma", "gamma_prime") if k not in grid]
    if missing:
        raise ConfigError(
            f"{where}.grid: a phase_diagram experiment needs the keys {missing} "
            "(Luo et al.'s gamma and gamma'; s and scheme follow from them)"
        )
    clash = [k for k in ("s", "scheme") if k in grid or k in (exp.get("fixed") or {})]
    if clash:
        raise ConfigError(
            f"{where}: keys {clash} are set by gamma and gamma_prime in a phase_diagram "
            "experiment; remove them"
        )
    for key in ("gamma", "gamma_prime"):
        bad = [v for v in grid[key] if not isinstance(v, (int, float)) or isinstance(v, bool)]
        if bad:
            raise ConfigError(f"{where}.grid.{key}: needs numbers, got {bad!r}")
    out = {}
    for key, values in grid.items():
        if key == "gamma":
            out["s"] = [round(1.0 - float(g), 12) for g in values]
        elif key == "gamma_prime":
            out["scheme"] = [luo_scheme(g) for g in values]
        else:
            out[key] = values
    exclude = []
    for ex in exp.get("exclude") or []:
        ex = dict(ex)
        if "gamma" in ex:
            ex["s"] = round(1.0 - float(ex.pop("gamma")), 12)
        if "gamma_prime" in ex:
            ex["scheme"] = luo_scheme(ex.pop("gamma_prime"))
        exclude.append(ex)
    return {**exp, "grid": out, "exclude": exclude}


def deep_grid(name: str, exp: Mapping[str, Any]) -> dict[str, Any]:
    """A ``deep_phase_diagram`` experiment → an ordinary training grid.

    The grid gives ``gamma_h`` (``γ_h``, the hidden layers' std exponent) and ``s`` instead of
    ``scheme``; ``gamma_h`` becomes ``scheme = deep:γ_h`` (docs/conventions.md §2), so the
    cells are the ``train`` cells of the same point."""
    where = f"experiments.{name}"
    grid = dict(exp.get("grid") or {})
    missing = [k for k in ("s", "gamma_h") if k not in grid]
    if missing:
        raise ConfigError(
            f"{where}.grid: a deep_phase_diagram experiment needs the keys {missing} "
            "(s = log kappa / log m and the hidden layers' exponent gamma_h)"
        )
    if "scheme" in grid or "scheme" in (exp.get("fixed") or {}):
        raise ConfigError(
            f"{where}: key 'scheme' is set by gamma_h in a deep_phase_diagram experiment "
            "(scheme deep:gamma_h); remove it"
        )
    for key in ("s", "gamma_h"):
        bad = [v for v in grid[key] if not isinstance(v, (int, float)) or isinstance(v, bool)]
        if bad:
            raise ConfigError(f"{where}.grid.{key}: needs numbers, got {bad!r}")
    out = {}
    for key, values in grid.items():
        if key == "gamma_h":
            out["scheme"] = [deep_scheme(g) for g in values]
        else:
            out[key] = values
    exclude = []
    for ex in exp.get("exclude") or []:
        ex = dict(ex)
        if "gamma_h" in ex:
            ex["scheme"] = deep_scheme(ex.pop("gamma_h"))
        exclude.append(ex)
    return {**exp, "grid": out, "exclude": exclude}


def expand_config(
    config: Mapping[str, Any],
    *,
    budget: Budget | None = None,
    calibration: Mapping[tuple[str, str], Throughput] | None = None,
) -> pd.DataFrame:
    """All cells of all experiments (see :func:`expand_experiment`), with ``kind`` and ``job``
    columns.

    A ``gram_concentration`` experiment batches over ``m`` (one job per activation, depth and
    scheme); its cells are only initialized. A ``phase_diagram`` experiment is a training grid
    given in Luo et al.'s coordinates (:func:`luo_grid`), a ``deep_phase_diagram`` one over
    ``(γ_h, s)`` (:func:`deep_grid`). A trained batch whose estimate exceeds
    the job budget (``budget``, else the configuration's ``budget`` block) is split into jobs of
    whole cells named ``<batch>_part~<k>`` (:func:`~lazyphase.pipeline.budget.split_batch`); the
    ``path`` column uses the job. Raises :class:`~lazyphase.pipeline.budget.BudgetError` for a
    replica that fits no job."""
    budget = budget if budget is not None else budget_from_config(config)
    exps = config.get("experiments") or {}
    if not exps:
        raise ConfigError("experiments: no experiment defined")
    frames = []
    for name, exp in exps.items():
        kind = exp.get("kind", "train")
        wrong = [f for f in exp.get("figures", []) if f not in kind_figures(kind)]
        if wrong:
            raise ConfigError(
                f"experiments.{name}.figures: {wrong} cannot be built from a {kind!r} experiment; "
                f"allowed: {', '.join(kind_figures(kind))}"
            )
        target_of(exp, name)  # a precision target on a quantity this kind reports
        if kind == "gram_concentration":
            exp = {**exp, "batch_over": ["m"]}
        if kind == "phase_diagram":
            exp = luo_grid(name, exp)
        if kind == "deep_phase_diagram":
            exp = deep_grid(name, exp)
        frame = expand_experiment(name, exp, trains=kind != "gram_concentration")
        frame["kind"] = kind
        frame["job"] = frame["batch"]
        if kind != "gram_concentration":
            _assign_jobs(frame, budget, calibration, name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _assign_jobs(
    frame: pd.DataFrame,
    budget: Budget,
    calibration: Mapping[tuple[str, str], Throughput] | None,
    name: str,
) -> None:
    """Split the batches of ``frame`` that exceed ``budget``: set ``job`` and ``path`` in place."""
    for batch, rows in frame.groupby("batch", sort=False):
        cells = list(rows["params"])
        parts = split_batch(cells, budget, calibration, where=f"experiments.{name} batch {batch}")
        if len(parts) == 1:
            continue
        for k, part in enumerate(parts, start=1):
            idx = rows.index[part]
            job = f"{batch}_part~{k}"
            frame.loc[idx, "job"] = job
            frame.loc[idx, "path"] = [
                f"results/{name}/runs/{job}/{cell}.h5" for cell in frame.loc[idx, "cell"]
            ]
