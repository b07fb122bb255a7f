"""Job budgets and the cost model of training jobs (docs/scale.md).

A *budget* bounds every training job: host memory (``mem_mb``), the device that trains
(``cpu`` or ``cuda``) and its memory (``device_mem_mb``), and the run time (``runtime_min``).
The grid splits a batch whose estimate exceeds the budget into several jobs of whole cells
(:func:`split_batch`), and a job trains its replicas in sequential chunks that fit the device
(:func:`chunk_replicas`). A single replica that does not fit raises :class:`BudgetError`, naming
the cell and the memory it needs, before any job starts.

The *cost model* is ``time = max_steps · step_s + Σ_replicas steps · (flops / rate + replica_s)``
with ``flops = 6 n P`` per replica-step (forward, backward and the fused update; ``P`` the
parameter count, conventions.md §2). ``rate``, ``step_s`` and ``replica_s`` come from a
calibration (``lazyphase calibrate``, stored in :func:`calibration_path`) or, without one, from
:data:`DEFAULT_THROUGHPUT`. The *upper bound* runs every replica to ``max_steps`` (it sets the
``runtime`` resource and the splitting); the *expected* cost multiplies the replica steps by the
experiment's ``expected_step_fraction`` (measured on earlier runs; 1 by default).

This module is the cost model only: it reads a calibration but never trains, so the grid and the
plan use it without importing the trainer; :mod:`lazyphase.pipeline.calibration` makes one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from lazyphase.cells import ConfigError


class BudgetError(ConfigError):
    """A replica or cell that no job of the budget can hold; the message names it."""


@dataclass(frozen=True)
class Budget:
    """Per-job limits. ``device``: ``cpu`` (the replicas live in host memory) or ``cuda``."""

    mem_mb: int = 16000
    runtime_min: int = 1440
    device: str = "cpu"
    device_mem_mb: int = 0
    #: the ``runtime`` resource is ``safety`` × the upper bound + 5 minutes
    safety: float = 1.5

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"


#: The budget of a configuration without a ``budget`` block: a workstation (16 GB, one day).
DEFAULT_BUDGET = Budget()

#: Budgets the profiles name (``budget: {preset: …}``); any key may be overridden beside it.
PRESETS: dict[str, Budget] = {
    "workstation": DEFAULT_BUDGET,
    "gpu-workstation": Budget(mem_mb=64000, runtime_min=1440, device="cuda", device_mem_mb=141000),
    "slurm": Budget(mem_mb=64000, runtime_min=1440, device="cuda", device_mem_mb=80000),
    "slurm-cpu": Budget(mem_mb=64000, runtime_min=1440, device="cpu"),
}


_TYPES = {"mem_mb": int, "runtime_min": int, "device_mem_mb": int, "safety": float, "device": str}


def budget_block(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A ``budget`` block with numeric strings (``--config budget={...}`` parses to strings)
    turned into numbers; other values are left for the schema to report."""
    out = dict(raw)
    for key, kind in _TYPES.items():
        if isinstance(out.get(key), str) and kind is not str:
            try:
                out[key] = kind(out[key])
            except ValueError:
                pass
    return out


def budget_from_config(config: Mapping[str, Any]) -> Budget:
    """The :class:`Budget` of a workflow configuration's ``budget`` block (a ``preset`` name and/or
    keys of :class:`Budget`, numbers or numeric strings); :data:`DEFAULT_BUDGET` without one."""
    raw = dict(config.get("budget") or {})
    preset = raw.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"budget.preset: unknown {preset!r}; allowed: {', '.join(PRESETS)}")
    base = PRESETS[preset] if preset else DEFAULT_BUDGET
    unknown = [k for k in raw if k not in Budget.__dataclass_fields__]
    if unknown:
        raise ConfigError(
            f"budget: unknown keys {unknown}; allowed: preset, {', '.join(asdict(base))}"
        )
    try:  # `--config budget={...}` (profiles) gives strings
        raw = {k: _TYPES[k](v) for k, v in raw.items()}
    except ValueError as exc:
        raise ConfigError(f"budget: {exc}") from None
    out = replace(base, **raw)
    if out.device not in ("cpu", "cuda"):
        raise ConfigError(f"budget.device: {out.device!r}; allowed: cpu, cuda")
    if out.gpu and out.device_mem_mb <= 0:
        raise ConfigError("budget.device_mem_mb: needed (> 0) when budget.device is cuda")
    return out


# --------------------------------------------------------------------------- throughput


@dataclass(frozen=True)
class Throughput:
    """Training speed on one device and dtype: ``gflops`` per second on the matmuls of a step,
    ``step_s`` seconds of fixed work per batch step and ``replica_s`` per replica-step."""

    gflops: float
    step_s: float
    replica_s: float
    source: str = "default"
    #: fixed seconds per job (first torch calls, data, initialization, NTK at init, writing)
    job_s: float = 5.0
    #: nanoseconds per activation element (σ and σ' of the ``n m L`` pre-activations of a
    #: replica-step; measured with tanh, the costliest; ReLU is cheaper)
    elem_ns: float = 10.0


#: Used without a calibration. CPU: one core of the benchmark machine reaches 20–60 GFLOP/s on
#: a GD step (benchmarks/RESULTS.md b), 10 is conservative; the overheads are those of the
#: ~30 small torch calls of a step. CUDA: an H200 has ~67 TFLOP/s float64 peak; a step of
#: n = 32 rows reaches a fraction of it, 5 (float64) and 10 (float32) TFLOP/s are conservative;
#: each step launches ~50 kernels (~1 ms).
DEFAULT_THROUGHPUT: dict[tuple[str, str], Throughput] = {
    ("cpu", "float64"): Throughput(10.0, 3e-4, 3e-5),
    ("cpu", "float32"): Throughput(20.0, 3e-4, 3e-5),
    ("cuda", "float64"): Throughput(5000.0, 1e-3, 1e-5, job_s=30.0, elem_ns=0.05),
    ("cuda", "float32"): Throughput(10000.0, 1e-3, 1e-5, job_s=30.0, elem_ns=0.05),
}

ENV_CALIBRATION = "LAZYPHASE_CALIBRATION"


def calibration_path() -> Path:
    """``$LAZYPHASE_CALIBRATION`` if set, else ``~/.cache/lazyphase/calibration.json``."""
    env = os.environ.get(ENV_CALIBRATION)
    if env:
        return Path(env)
    return (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "lazyphase"
        / "calibration.json"
    )


def load_calibration(path: str | os.PathLike | None = None) -> dict[tuple[str, str], Throughput]:
    """The throughputs per ``(device, dtype)``: the defaults, replaced by the entries of the
    calibration file (if it exists)."""
    out = dict(DEFAULT_THROUGHPUT)
    p = Path(path) if path is not None else calibration_path()
    if p.exists():
        with open(p) as fh:
            data = json.load(fh)
        for key, entry in data.get("throughput", {}).items():
            dev, dtype = key.split("/")
            out[(dev, dtype)] = Throughput(
                float(entry["gflops"]), float(entry["step_s"]), float(entry["replica_s"]),
                source=f"{p} ({data.get('date', '?')}, {data.get('host', '?')})",
                job_s=float(entry.get("job_s", DEFAULT_THROUGHPUT[(dev, dtype)].job_s)),
                elem_ns=float(entry.get("elem_ns", DEFAULT_THROUGHPUT[(dev, dtype)].elem_ns)),
            )  # fmt: skip
    return out


def save_calibration(
    entries: Mapping[tuple[str, str], Throughput],
    path: str | os.PathLike | None = None,
    **meta: Any,
) -> Path:
    """Merge ``entries`` into the calibration file (other devices' entries are kept)."""
    p = Path(path) if path is not None else calibration_path()
    data: dict[str, Any] = {}
    if p.exists():
        with open(p) as fh:
            data = json.load(fh)
    tp = data.setdefault("throughput", {})
    for (dev, dtype), t in entries.items():
        tp[f"{dev}/{dtype}"] = {
            "gflops": t.gflops, "step_s": t.step_s, "replica_s": t.replica_s, "job_s": t.job_s,
            "elem_ns": t.elem_ns,
        }  # fmt: skip
    data.update(meta)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
    os.replace(tmp, p)
    return p


# --------------------------------------------------------------------------- cost of cells


def n_params(cell: Mapping[str, Any]) -> int:
    """Parameters of one replica: ``(d+b)m + (L−1) m (m+b) + m + b``."""
    m, depth, b = cell["m"], cell["depth"], int(cell["bias"])
    return (cell["d"] + b) * m + (depth - 1) * m * (m + b) + m + b


def step_flops(cell: Mapping[str, Any]) -> float:
    """Matmul FLOPs of one GD step of one replica: ``6 n P`` (forward 2nP, backward ≤ 2nP,
    gradient and update 2nP; benchmarks/RESULTS.md b)."""
    n = cell["batch_size"] or cell["n"]
    return 6.0 * n * n_params(cell)


def step_elements(cell: Mapping[str, Any]) -> int:
    """Activation elements of one GD step of one replica: ``n m L`` (σ and σ' each)."""
    return (cell["batch_size"] or cell["n"]) * cell["m"] * cell["depth"]


def _item(cell: Mapping[str, Any]) -> int:
    return 8 if cell["dtype"] == "float64" else 4


def _n_kernel(cell: Mapping[str, Any]) -> int:
    return cell["n_kernel"] or (cell["n"] if cell["n"] <= 256 else 256)


def replica_device_bytes(cell: Mapping[str, Any]) -> float:
    """Training memory of one replica on its device: parameters four times (``θ0``, ``Δθ``, its
    previous value, ``θ``) plus one gradient, activations twice per layer on the training, test
    and kernel sets, the Gram snapshots; ×1.5 for the allocator and temporaries."""
    n_k = _n_kernel(cell)
    points = cell["n"] + cell["n_test"] + n_k
    grams = (cell["n_gram_snapshots"] + 3) * (cell["depth"] + 1) * n_k * n_k
    return 1.5 * (5 * n_params(cell) + 3 * cell["depth"] * points * cell["m"] + grams) * _item(cell)


def replica_host_bytes(cell: Mapping[str, Any]) -> float:
    """Host memory a trained replica holds until its cell's file is written: float64 initial and
    final parameters, the Gram snapshots, the data (×1.2)."""
    n_k = _n_kernel(cell)
    grams = (cell["n_gram_snapshots"] + 3) * (cell["depth"] + 1) * n_k * n_k
    data = (cell["n"] + cell["n_test"] + n_k) * (cell["d"] + 1)
    return 1.2 * (2 * n_params(cell) + grams + data) * 8


BASE_MB = {"cpu": 600, "cuda": 2500}  # interpreter, torch, h5py (+ the CUDA context on a GPU)
DEVICE_BASE_MB = 1000  # CUDA context and allocator reserve on the device
MB = 2**20


def chunk_replicas(cells: Sequence[Mapping[str, Any]], budget: Budget | None) -> int:
    """How many replicas of a job train at once: all of them without a budget, else as many as
    fit the device (``cuda``: ``device_mem_mb``; ``cpu``: ``mem_mb``, after the retained host
    copies of the cell being trained). At least 1 (:func:`check_replica` reports a replica that
    does not fit)."""
    total = sum(len(c["seeds"]) for c in cells)
    if budget is None:
        return total
    c = cells[0]
    dev = replica_device_bytes(c) / MB
    if budget.gpu:  # 10 % of the device left for fragmentation
        room = 0.9 * budget.device_mem_mb - DEVICE_BASE_MB
    else:
        cell_reps = max(len(x["seeds"]) for x in cells)
        room = budget.mem_mb - BASE_MB["cpu"] - cell_reps * replica_host_bytes(c) / MB
        room = min(room, budget.mem_mb - BASE_MB["cpu"] - dev)  # a replica and its retained copy
    return max(1, min(total, int(room // dev)))


def job_mem_mb(cells: Sequence[Mapping[str, Any]], budget: Budget | None = None) -> int:
    """Peak host memory of a job in MB (the ``mem_mb`` resource)."""
    c = cells[0]
    reps = sum(len(x["seeds"]) for x in cells)
    chunk = chunk_replicas(cells, budget)
    dev = replica_device_bytes(c) / MB
    host = replica_host_bytes(c) / MB
    if budget is not None and budget.gpu:
        cell_reps = max(len(x["seeds"]) for x in cells)
        return int(BASE_MB["cuda"] + (min(reps, chunk + cell_reps)) * host)
    if chunk >= reps:  # one batch, as without a budget
        return int(BASE_MB["cpu"] + reps * dev)
    cell_reps = max(len(x["seeds"]) for x in cells)
    return int(BASE_MB["cpu"] + chunk * dev + cell_reps * host)


def job_device_mem_mb(cells: Sequence[Mapping[str, Any]], budget: Budget | None) -> int:
    """Peak device memory (MB) of a job on a GPU budget, 0 on the CPU."""
    if budget is None or not budget.gpu:
        return 0
    chunk = chunk_replicas(cells, budget)
    return int(DEVICE_BASE_MB + chunk * replica_device_bytes(cells[0]) / MB)


def job_seconds(
    cells: Sequence[Mapping[str, Any]],
    throughput: Throughput,
    *,
    chunk: int | None = None,
    fraction: float = 1.0,
) -> float:
    """Estimated seconds of a job: ``job_s`` plus the steps; ``fraction`` = 1 is the upper bound
    (every replica runs ``max_steps``); the expected cost scales the steps by ``fraction``. Each of
    the ``ceil(R / chunk)`` sequential chunks pays the per-step overhead."""
    c = cells[0]
    reps = sum(len(x["seeds"]) for x in cells)
    chunk = chunk or reps
    steps = c["max_steps"]
    per_rep = (
        step_flops(c) / (throughput.gflops * 1e9)
        + step_elements(c) * throughput.elem_ns * 1e-9
        + throughput.replica_s
    )
    n_chunks = math.ceil(reps / chunk)
    return (
        throughput.job_s
        + n_chunks * steps * fraction * throughput.step_s
        + reps * steps * fraction * per_rep
    )


def throughput_for(
    cells: Sequence[Mapping[str, Any]],
    budget: Budget | None,
    calibration: Mapping[tuple[str, str], Throughput] | None = None,
) -> Throughput:
    cal = calibration if calibration is not None else load_calibration()
    dev = budget.device if budget is not None else "cpu"
    return cal[(dev, cells[0]["dtype"])]


def job_runtime_min(
    cells: Sequence[Mapping[str, Any]],
    budget: Budget | None = None,
    calibration: Mapping[tuple[str, str], Throughput] | None = None,
) -> int:
    """The ``runtime`` resource in minutes: ``safety`` × the upper bound + 5."""
    b = budget or DEFAULT_BUDGET
    tp = throughput_for(cells, b, calibration)
    secs = job_seconds(cells, tp, chunk=chunk_replicas(cells, budget))
    return math.ceil(5 + b.safety * secs / 60)


def check_replica(cell: Mapping[str, Any], budget: Budget, where: str) -> None:
    """Raise :class:`BudgetError` when one replica of ``cell`` cannot fit a job of ``budget``."""
    dev = replica_device_bytes(cell) / MB
    host = replica_host_bytes(cell) / MB
    if budget.gpu:
        if DEVICE_BASE_MB + dev > 0.9 * budget.device_mem_mb:
            raise BudgetError(
                f"{where}: one replica (m={cell['m']}, depth={cell['depth']}, {cell['dtype']}) "
                f"needs about {DEVICE_BASE_MB + dev:.0f} MB of device memory but "
                f"budget.device_mem_mb={budget.device_mem_mb} (docs/scale.md)"
            )
        need = BASE_MB["cuda"] + len(cell["seeds"]) * host + host
        what = f"{len(cell['seeds'])} replicas' host copies"
    else:
        need = BASE_MB["cpu"] + dev + len(cell["seeds"]) * host
        what = f"one replica training and {len(cell['seeds'])} replicas' host copies"
    if need > budget.mem_mb:
        raise BudgetError(
            f"{where}: {what} (m={cell['m']}, depth={cell['depth']}, {cell['dtype']}) need about "
            f"{need:.0f} MB of host memory but budget.mem_mb={budget.mem_mb}; a GPU budget "
            "(profiles gpu-workstation, slurm) or a larger budget.mem_mb holds it (docs/scale.md)"
        )


def split_batch(
    cells: Sequence[Mapping[str, Any]],
    budget: Budget,
    calibration: Mapping[tuple[str, str], Throughput] | None = None,
    where: str = "",
) -> list[list[int]]:
    """The jobs of one batch: lists of indices of whole cells, in order, each within ``budget``
    (host memory and run time). One job when the batch fits. Raises :class:`BudgetError` for a
    replica that fits no job, or a cell whose replicas alone exceed the run time."""
    for c in cells:
        check_replica(c, budget, where)
    cal = calibration if calibration is not None else load_calibration()

    def fits(group: list[int]) -> bool:
        sub = [cells[i] for i in group]
        return (
            job_mem_mb(sub, budget) <= budget.mem_mb
            and job_runtime_min(sub, budget, cal) <= budget.runtime_min
        )

    if fits(list(range(len(cells)))):
        return [list(range(len(cells)))]
    jobs: list[list[int]] = []
    current: list[int] = []
    for i in range(len(cells)):
        if current and fits([*current, i]):
            current.append(i)
            continue
        if current:
            jobs.append(current)
        current = [i]
        if not fits(current):
            c = cells[i]
            raise BudgetError(
                f"{where}: the {len(c['seeds'])} replicas of cell m={c['m']}, depth={c['depth']} "
                f"need {job_runtime_min([c], budget, cal)} min (upper bound x {budget.safety}) "
                f"but budget.runtime_min={budget.runtime_min}; use fewer seeds per cell, a "
                f"faster device (budget.device) or a calibration (lazyphase calibrate); the profiles "
                "gpu-workstation and slurm set GPU budgets (docs/scale.md)"
            )
    jobs.append(current)
    return jobs


def resources_budget(resources: Mapping[str, Any]) -> Budget:
    """The job budget a Snakemake job's ``resources`` carry (``budget_mem_mb``, else its
    ``mem_mb``, and ``device_mem_mb``; see common.smk's BUDGET_RESOURCES)."""
    return Budget(mem_mb=int(resources.get("budget_mem_mb", resources.get("mem_mb", 16000))),
                  device_mem_mb=int(resources.get("device_mem_mb", 0)))  # fmt: skip
