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
    #: a job longer than ``runtime_min`` runs as a chain of at most this many segments, each
    #: resuming from the previous one's checkpoint (:func:`segments`); 1: no chains
    max_segments: int = 1
    #: the GPU of a ``cuda`` budget, a key of :data:`GPU_PEAKS`; prices the jobs when no GPU
    #: was calibrated
    gpu_model: str = "H100"

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"


#: The budget of a configuration without a ``budget`` block: a workstation (16 GB, one day).
DEFAULT_BUDGET = Budget()

#: Budgets the profiles name (``budget: {preset: …}``); any key may be overridden beside it.
PRESETS: dict[str, Budget] = {
    "workstation": DEFAULT_BUDGET,
    "gpu-workstation": Budget(
        mem_mb=64000, runtime_min=1440, device="cuda", device_mem_mb=141000, gpu_model="H200"
    ),
    "slurm": Budget(mem_mb=64000, runtime_min=1440, device="cuda", device_mem_mb=80000),
    "slurm-cpu": Budget(mem_mb=64000, runtime_min=1440, device="cpu", max_segments=30),
}


_TYPES = {"mem_mb": int, "runtime_min": int, "device_mem_mb": int, "safety": float, "device": str,
          "max_segments": int, "gpu_model": str}  # fmt: skip


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
    if out.gpu_model not in GPU_PEAKS:
        raise ConfigError(
            f"budget.gpu_model: unknown {out.gpu_model!r}; known: {', '.join(GPU_PEAKS)}"
        )
    if out.max_segments < 1:
        raise ConfigError(f"budget.max_segments: {out.max_segments}; at least 1")
    return out


#: Seconds a segment of a chain loses: the stop before the time limit (at most 2 min,
#: jobs.slurm_deadline), writing and reading the checkpoint, the job's start-up.
SEGMENT_OVERHEAD_S = 180.0


def segments(job_s: float, limit_s: float, overhead_s: float = SEGMENT_OVERHEAD_S) -> int:
    """The segments of a job of ``job_s`` seconds under a time limit of ``limit_s`` seconds,
    each of which trains ``limit_s − overhead_s`` seconds: ``ceil(job_s / (limit_s −
    overhead_s))``, at least 1. Raises ``ValueError`` when the overhead leaves no time."""
    usable = limit_s - overhead_s
    if usable <= 0:
        raise ValueError(f"a time limit of {limit_s:.0f} s leaves no time after {overhead_s:.0f} s")
    return max(1, math.ceil(job_s / usable))


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


#: Peak matmul rates in TFLOP/s ``(float64, float32)`` of the GPUs the plan knows (the vendors'
#: data sheets, dense, SXM boards unless named): the float64 rate is the tensor-core DGEMM rate
#: where the GPU has one (cuBLAS uses it), the float32 rate the plain FP32 one (the deterministic
#: GPU mode turns TF32 off, docs/reproducibility.md).
GPU_PEAKS: dict[str, tuple[float, float]] = {
    "H200": (67.0, 67.0),
    "H100": (67.0, 67.0),
    "H100-PCIe": (51.0, 51.0),
    "A100": (19.5, 19.5),
    "V100": (7.8, 15.7),
    "L40S": (1.43, 91.6),
    "A10": (0.98, 31.2),
    "RTX4090": (1.29, 82.6),
    "T4": (0.25, 8.1),
}

#: The share of the matmul peak a GD step reaches (``6 n P`` FLOPs at the step's rate against
#: ``torch.mm`` of a large square matrix), measured on the CPU of the benchmark VM with
#: ``lazyphase calibrate --gpu-probe`` (benchmarks/RESULTS.md, "the cost model learns from the
#: runs"); ``calibrate --gpu-probe`` on a GPU measures the GPU itself and replaces the table.
GPU_EFFICIENCY: dict[str, float] = {"float64": 0.38, "float32": 0.33}


def gpu_throughput(model: str, dtype: str) -> Throughput:
    """The throughput of :data:`GPU_PEAKS` ``[model]`` × :data:`GPU_EFFICIENCY`, with the
    per-step and per-replica overheads of ~50 kernel launches (~1 ms a step)."""
    if model not in GPU_PEAKS:
        raise ValueError(f"unknown GPU {model!r}; known: {', '.join(GPU_PEAKS)}")
    peak = GPU_PEAKS[model][0 if dtype == "float64" else 1]
    return Throughput(
        peak * 1e3 * GPU_EFFICIENCY[dtype], 1e-3, 1e-5, job_s=30.0, elem_ns=0.05,
        source=f"GPU table ({model}: {peak:g} TFLOP/s peak x {GPU_EFFICIENCY[dtype]:g})",
    )  # fmt: skip


#: Used without a calibration. CPU: one core of the benchmark machine reaches 20–60 GFLOP/s on
#: a GD step (benchmarks/RESULTS.md b), 10 is conservative; the overheads are those of the
#: ~30 small torch calls of a step. CUDA: the :data:`GPU_PEAKS` table for an H100 (a budget's
#: ``gpu_model`` picks another row, :func:`calibration_for`).
DEFAULT_THROUGHPUT: dict[tuple[str, str], Throughput] = {
    ("cpu", "float64"): Throughput(10.0, 3e-4, 3e-5),
    ("cpu", "float32"): Throughput(20.0, 3e-4, 3e-5),
    ("cuda", "float64"): gpu_throughput("H100", "float64"),
    ("cuda", "float32"): gpu_throughput("H100", "float32"),
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


def calibration_for(
    budget: Budget, path: str | os.PathLike | None = None
) -> dict[tuple[str, str], Throughput]:
    """:func:`load_calibration`, with the CUDA entries that no GPU measured taken from the GPU
    table for ``budget.gpu_model``."""
    cal = load_calibration(path)
    for dtype in ("float64", "float32"):
        if cal[("cuda", dtype)] == DEFAULT_THROUGHPUT[("cuda", dtype)]:
            cal[("cuda", dtype)] = gpu_throughput(budget.gpu_model, dtype)
    return cal


def load_evidence(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The step evidence that ``lazyphase calibrate --from-runs`` stored in the calibration file
    (:func:`lazyphase.pipeline.evidence.step_evidence`, with ``from`` and ``rate_factor``), or
    None."""
    p = Path(path) if path is not None else calibration_path()
    if not p.exists():
        return None
    with open(p) as fh:
        return json.load(fh).get("evidence")


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
    fraction: float | Sequence[float] = 1.0,
    batch_fraction: float | None = None,
) -> float:
    """Estimated seconds of a job: ``job_s`` plus the steps; ``fraction`` = 1 is the upper bound
    (every replica runs ``max_steps``); the expected cost scales the replicas' steps by
    ``fraction``, one number or one per cell, and the per-step overhead by ``batch_fraction``
    (a batch steps until its last replica stops; default: the largest ``fraction``). Each of
    the ``ceil(R / chunk)`` sequential chunks pays the per-step overhead."""
    c = cells[0]
    fracs = [fraction] * len(cells) if isinstance(fraction, (int, float)) else list(fraction)
    reps = sum(len(x["seeds"]) for x in cells)
    chunk = chunk or reps
    steps = c["max_steps"]
    per_rep = (
        step_flops(c) / (throughput.gflops * 1e9)
        + step_elements(c) * throughput.elem_ns * 1e-9
        + throughput.replica_s
    )
    n_chunks = math.ceil(reps / chunk)
    rep_steps = sum(len(x["seeds"]) * f for x, f in zip(cells, fracs)) * steps
    batch = max(fracs) if batch_fraction is None else batch_fraction
    return throughput.job_s + n_chunks * steps * batch * throughput.step_s + rep_steps * per_rep


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


def job_segments(
    cells: Sequence[Mapping[str, Any]],
    budget: Budget | None = None,
    calibration: Mapping[tuple[str, str], Throughput] | None = None,
) -> int:
    """Segments of a job: 1 when its runtime resource fits ``budget.runtime_min``; else the
    :func:`segments` of ``safety`` × its upper bound under that limit (each resumes from the
    previous one's checkpoint, docs/scale.md)."""
    b = budget or DEFAULT_BUDGET
    if job_runtime_min(cells, b, calibration) <= b.runtime_min:
        return 1
    tp = throughput_for(cells, b, calibration)
    secs = job_seconds(cells, tp, chunk=chunk_replicas(cells, budget))
    return segments(b.safety * secs, 60.0 * b.runtime_min)


def job_runtime_resource(
    cells: Sequence[Mapping[str, Any]],
    budget: Budget | None = None,
    calibration: Mapping[tuple[str, str], Throughput] | None = None,
) -> int:
    """The ``runtime`` resource in minutes: :func:`job_runtime_min`, capped at the budget's
    ``runtime_min`` (the partition's limit) for a job chained over several segments."""
    b = budget or DEFAULT_BUDGET
    est = job_runtime_min(cells, b, calibration)
    return min(est, b.runtime_min) if job_segments(cells, b, calibration) > 1 else est


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

    def chained(i: int) -> bool:  # one cell alone, as a chain of segments within max_segments
        return 1 < job_segments([cells[i]], budget, cal) <= budget.max_segments

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
        if not fits(current) and not chained(i):
            c = cells[i]
            need = job_segments([c], budget, cal)
            raise BudgetError(
                f"{where}: the {len(c['seeds'])} replicas of cell m={c['m']}, depth={c['depth']} "
                f"need {job_runtime_min([c], budget, cal)} min (upper bound x {budget.safety}) "
                f"but budget.runtime_min={budget.runtime_min}, and {need} segments but "
                f"budget.max_segments={budget.max_segments}; use fewer seeds per cell, more "
                "segments (budget.max_segments), a faster device (budget.device) or a calibration "
                "(lazyphase calibrate); the profiles gpu-workstation and slurm set GPU budgets "
                "(docs/scale.md)"
            )
    jobs.append(current)
    return jobs


def resources_budget(resources: Mapping[str, Any]) -> Budget:
    """The job budget a Snakemake job's ``resources`` carry (``budget_mem_mb``, else its
    ``mem_mb``, and ``device_mem_mb``; see common.smk's BUDGET_RESOURCES)."""
    return Budget(mem_mb=int(resources.get("budget_mem_mb", resources.get("mem_mb", 16000))),
                  device_mem_mb=int(resources.get("device_mem_mb", 0)))  # fmt: skip
