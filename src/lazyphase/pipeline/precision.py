"""Precision-targeted sampling: seeds (and widths) added in rounds until every reported interval
is at most ``target_ci_width`` wide, or a cap (seeds, CPU-hours, rounds) is reached.

The quantity targeted (``target_on``) is one of

* ``exponent``: the regime exponent of every (scheme, activation, depth, s, layer) group
  (:func:`lazyphase.stats.fit_exponents`; A2, B1, B2);
* ``s_star``: the threshold ``s*`` per (scheme, activation, depth, layer) (A2:
  :func:`lazyphase.stats.thresholds`; B2: the boundary table);
* ``gamma_star``: B1's boundary ``γ*`` per ``γ'``.

A *cell group* is the set of grid cells one interval is fitted from (every width, and for ``s*``
and ``γ*`` every ``s``); seeds are added per cell group, so every cell of a group, bisection points
included, has the same seeds. :func:`next_round` is the decision, a pure function; the training
rounds are :func:`lazyphase.pipeline.steps.precision_rounds` (docs/statistics.md, "Precision
targets").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lazyphase import stats
from lazyphase.cells import ConfigError

#: The quantities a target can be set on, and the experiment kinds that report each.
TARGET_ON = {
    "exponent": ("train", "phase_diagram", "deep_phase_diagram"),
    "s_star": ("train", "deep_phase_diagram"),
    "gamma_star": ("phase_diagram",),
}
#: The cell keys of a cell group, per target.
GROUP_KEYS = {
    "exponent": ("scheme", "activation", "depth", "s"),
    "s_star": ("scheme", "activation", "depth"),
    "gamma_star": ("scheme", "activation", "depth"),
}
#: Why a cell group got no more seeds (``stop`` column); ``""``: it gets more.
STOPS = ("met", "max_seeds", "cpu_hours", "no estimate", "rounds")


@dataclass(frozen=True)
class Target:
    """A precision target (the ``target_*`` keys of an experiment, docs/configuration.md).

    ``ci_width``: the widest interval accepted; ``on``: see :data:`TARGET_ON`; ``max_seeds``: seeds
    per cell group at most; ``rounds``: training rounds at most; ``growth``: seeds of the next round
    = ``ceil(growth × seeds)``; ``cpu_hours``: CPU-hours the rounds may spend (None: no cap);
    ``widths``: widths that may be added, in order, where seeds alone cannot reach the target."""

    ci_width: float
    on: str = "exponent"
    max_seeds: int = 12
    rounds: int = 6
    growth: float = 1.5
    cpu_hours: float | None = None
    widths: tuple[int, ...] = field(default_factory=tuple)


def target_of(exp: Mapping[str, Any], name: str = "") -> Target | None:
    """The :class:`Target` of an experiment's configuration (None without ``target_ci_width``).
    Raises :class:`ConfigError` for a ``target_on`` the experiment's kind does not report."""
    if exp.get("target_ci_width") is None:
        return None
    kind = exp.get("kind", "train")
    on = exp.get("target_on", "exponent")
    if kind not in TARGET_ON.get(on, ()):
        allowed = [k for k, kinds in TARGET_ON.items() if kind in kinds]
        if not allowed:
            raise ConfigError(f"experiments.{name}.target_ci_width: a {kind!r} experiment has "
                              "no interval to target; remove it")  # fmt: skip
        raise ConfigError(f"experiments.{name}.target_on: {on!r} is not reported by a {kind!r} "
                          f"experiment; allowed: {', '.join(allowed)}")  # fmt: skip
    return Target(
        ci_width=float(exp["target_ci_width"]),
        on=on,
        max_seeds=int(exp.get("target_max_seeds", 12)),
        rounds=int(exp.get("target_rounds", 6)),
        growth=float(exp.get("target_growth", 1.5)),
        cpu_hours=exp.get("target_cpu_hours"),
        widths=tuple(int(m) for m in exp.get("target_widths") or ()),
    )


def next_seeds(n_seeds: int, growth: float, max_seeds: int) -> int:
    """Seeds of the next round: ``ceil(growth · n)``, at least ``n + 1``, at most ``max_seeds``."""
    return int(min(max_seeds, max(n_seeds + 1, math.ceil(growth * n_seeds - 1e-9))))


def next_round(
    intervals: pd.DataFrame,
    seeds_used: Sequence[int] | np.ndarray,
    *,
    target: float,
    max_seeds: int = 12,
    growth: float = 1.5,
    cpu_hours_used: float = 0.0,
    cpu_hours_per_seed: float | Sequence[float] | np.ndarray = 0.0,
    cpu_hours: float | None = None,
    widths_left: int = 0,
) -> pd.DataFrame:
    """The decision of one round, per cell group (one row of ``intervals`` each).

    Args:
        intervals: ``estimate`` and ``ci_width`` (``high − low``; NaN or inf: no interval yet)
            per cell group, any other columns kept.
        seeds_used: ``(G,)`` seeds each group has now.
        target: the widest interval accepted.
        max_seeds, growth: a group not yet met goes from ``n`` to :func:`next_seeds` seeds.
        cpu_hours_used, cpu_hours_per_seed, cpu_hours: CPU-hours spent so far, one more seed of
            each group (scalar or ``(G,)``), the cap (None: none). Groups are served widest
            interval first; one whose seeds would take the total past the cap stops.
        widths_left: widths still available; a group gets ``add_width`` when even ``max_seeds``
            seeds would leave it wider than the target (the width ∝ 1/√seeds projection), so
            the fit is limited by the leverage of its widths, not by the seeds.

    Returns a copy of ``intervals`` with ``n_seeds``, ``n_seeds_next`` (= ``n_seeds`` when it
    stops), ``target_met``, ``add_width`` and ``stop`` (one of :data:`STOPS`, ``""`` when the
    group gets more seeds). The rounds end when every ``stop`` is non-empty.
    """
    out = intervals.copy()
    used = np.asarray(seeds_used, dtype=int)
    width = out["ci_width"].to_numpy(dtype=float)
    width = np.where(np.isnan(width), np.inf, width)
    cost = np.broadcast_to(np.asarray(cpu_hours_per_seed, dtype=float), used.shape)
    met = width <= target
    stop = np.where(met, "met", "").astype(object)
    stop[~met & ~np.isfinite(out["estimate"].to_numpy(dtype=float))] = "no estimate"
    stop[(stop == "") & (used >= max_seeds)] = "max_seeds"
    nxt = used.copy()
    spent = float(cpu_hours_used)
    for g in np.argsort(-width, kind="stable"):  # widest first: the cap spends where it matters
        if stop[g]:
            continue
        n = next_seeds(int(used[g]), growth, max_seeds)
        extra = (n - used[g]) * cost[g]
        if cpu_hours is not None and spent + extra > cpu_hours:
            stop[g] = "cpu_hours"
            continue
        spent += extra
        nxt[g] = n
    reach = width * np.sqrt(used / max(max_seeds, 1))
    out["n_seeds"], out["n_seeds_next"] = used, nxt
    out["target_met"] = met
    out["add_width"] = (stop == "") & (widths_left > 0) & (reach > target)
    out["stop"] = stop
    return out


def intervals(
    study: str, on: str, runs: pd.DataFrame, *, n_boot: int = 1000, ci: float = 0.9
) -> pd.DataFrame:
    """Every interval the experiment reports on ``on`` from ``runs``: the group keys (those of
    :data:`GROUP_KEYS` and ``layer_name``), ``estimate``, ``low``, ``high``, ``ci_width`` and
    ``n_seeds``. ``study``: ``train`` (A2), ``phase`` (B1, layer W1 only) or ``deep_phase`` (B2)."""
    if study == "phase":
        runs = runs[runs["layer_name"] == "W1"]
    exps, boot = stats.fit_exponents(runs, n_boot=n_boot, ci=ci)
    if on == "exponent":
        frame = exps.rename(columns={"slope": "estimate", "ci_low": "low", "ci_high": "high"})
    else:
        thr = stats.thresholds(exps, boot, ci=ci)
        seeds = exps.groupby(list(stats.THRESHOLD_BY))["n_seeds"].min().reset_index()
        thr = thr.merge(seeds, on=list(stats.THRESHOLD_BY), how="left")
        frame = thr.rename(columns={"s_star": "estimate", "s_star_low": "low",
                                    "s_star_high": "high"})  # fmt: skip
        if on == "gamma_star":  # γ = 1 − s: the same width, the ends swapped
            frame = frame.assign(estimate=1 - frame["estimate"], low=1 - frame["high"],
                                 high=1 - frame["low"])  # fmt: skip
    keys = [*GROUP_KEYS[on], "layer_name"]
    frame = frame[[*keys, "estimate", "low", "high", "n_seeds"]].copy()
    frame["ci_width"] = frame["high"] - frame["low"]
    return frame.reset_index(drop=True)


def cell_groups(frame: pd.DataFrame, on: str) -> pd.DataFrame:
    """One row per cell group of :func:`intervals`' ``frame``: its widest interval over the
    layers (``ci_width``, NaN counted as no interval), the estimate of that row, fewest seeds.
    A layer without an estimate counts only when no layer of the group has one: seeds cannot
    give it an interval, but they can narrow the others'."""
    keys = list(GROUP_KEYS[on])
    has = np.isfinite(frame["estimate"].to_numpy(dtype=float))
    f = frame.assign(_w=np.where(has, frame["ci_width"].fillna(np.inf), -1.0))
    worst = f.sort_values("_w", ascending=False, kind="stable").drop_duplicates(keys)
    worst = worst.drop(columns=["n_seeds", "_w"]).merge(
        f.groupby(keys)["n_seeds"].min().reset_index(), on=keys
    )
    return worst.sort_values(keys).reset_index(drop=True)


def group_points(runs: pd.DataFrame, group: Mapping[str, Any], on: str) -> list[dict[str, Any]]:
    """The grid points ``{scheme, activation, depth, s}`` of ``runs`` in one cell group (the
    bisection points of earlier rounds included)."""
    keys = list(GROUP_KEYS[on])
    pts = runs[["scheme", "activation", "depth", "s"]].drop_duplicates()
    sel = np.ones(len(pts), dtype=bool)
    for k in keys:
        sel &= (pts[k] == group[k]).to_numpy()
    return [
        {"scheme": str(r["scheme"]), "activation": str(r["activation"]),
         "depth": int(r["depth"]), "s": float(r["s"])}
        for r in pts[sel].sort_values("s").to_dict("records")
    ]  # fmt: skip


def new_seeds(have: Sequence[int], n: int) -> list[int]:
    """The seeds to add so that ``have`` grows to ``n``: the smallest unused integers (a group
    at the same count gets the same seeds, so the paired bootstrap pairs them)."""
    have_set, out, k = set(int(s) for s in have), [], 0
    while len(have_set) + len(out) < n:
        if k not in have_set:
            out.append(k)
        k += 1
    return out


def precision_table(
    final: pd.DataFrame, decisions: pd.DataFrame, target: Target, rounds_run: int
) -> pd.DataFrame:
    """``precision.csv``: the final intervals (one row per group and layer) with ``ci_width``,
    ``target``, ``target_on``, ``target_met``, ``stop`` (why the group stopped) and
    ``rounds`` (training rounds that ran)."""
    keys = list(GROUP_KEYS[target.on])
    stop = decisions[[*keys, "stop"]]
    out = final.merge(stop, on=keys, how="left")
    out["target"] = target.ci_width
    out["target_on"] = target.on
    out["target_met"] = out["ci_width"].fillna(np.inf) <= target.ci_width
    stop = np.where(out["estimate"].isna(), "no estimate", out["stop"].replace("", "rounds"))
    out["stop"] = np.where(out["target_met"], "met", stop)
    out["rounds"] = rounds_run
    return out
