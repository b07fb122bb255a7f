"""``lazyphase inspect``: what a file is, which code wrote it, and its key facts.

Every kind of file the pipeline writes is recognised: run files (``train_cell``), data set
files (``dataset.h5``), A4 concentration files, parquet and CSV tables, manifests and training
checkpoints (``.pt``). Each is read through its own reader, so every checksum is verified; a
file is called corrupt only when that reader refuses it (or it cannot be opened at all).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lazyphase.core.model import layer_names
from lazyphase.store.concentration import ConcentrationFileError, read_concentration
from lazyphase.store.dictionary import describe_table
from lazyphase.store.files import TableFileError, read_manifest, read_table
from lazyphase.store.h5 import hdf5_kind, root_attrs
from lazyphase.store.provenance import CODE_KEY, GIT_KEY, shown
from lazyphase.store.provenance import KEYS as PROVENANCE_KEYS
from lazyphase.store.runs import RunFileError, load_run, read_datasets


@dataclass(frozen=True)
class Inspection:
    """The result of :func:`inspect_file`: ``kind`` (``run``, ``dataset``, ``concentration``,
    ``table``, ``manifest``, ``checkpoint``, or None when unrecognised), ``ok`` (False: corrupt,
    unreadable or not a lazyphase file) and the text to print."""

    path: str
    kind: str | None
    ok: bool
    text: str


def provenance_lines(values: dict[str, Any] | None) -> list[str]:
    """The two provenance lines of a file (``unknown`` when it was written without them)."""
    p = shown(values)
    return [f"  code   {p[CODE_KEY]}", f"  git    {p[GIT_KEY]}"]


def _bad(path: str, kind: str | None, exc: Exception | str) -> Inspection:
    what = {None: "file", "table": "table", "manifest": "manifest"}.get(kind, f"{kind} file")
    msg = " ".join(str(exc).split())
    if msg.startswith(f"{path}: "):
        msg = msg[len(path) + 2 :]
    return Inspection(path, kind, False, f"{path}: corrupt or unreadable {what}: {msg}")


def _run(path: str, rows: int) -> Inspection:
    return Inspection(path, "run", True, format_run(path, rows))


def _dataset(path: str, rows: int) -> Inspection:
    sets = read_datasets(path)  # every checksum and the seal
    attrs = root_attrs(path)
    lines = [f"{path}: data set file (schema {attrs.get('schema_version')}), {len(sets)} data "
             "set(s), one per distinct (data seed, n, d, teacher) of the experiment"]  # fmt: skip
    lines += provenance_lines(attrs)
    for key, ds in list(sets.items())[:rows]:
        shapes = ", ".join(f"{n} {tuple(getattr(ds, n).shape)}" for n in ("x_train", "x_test",
                                                                          "x_kernel"))  # fmt: skip
        lines.append(f"  {key}: {shapes}")
    if len(sets) > rows:
        lines.append(f"  ... and {len(sets) - rows} more")
    return Inspection(path, "dataset", True, "\n".join(lines))


def _concentration(path: str, rows: int) -> Inspection:
    table, limit, attrs = read_concentration(path)
    widths = sorted(int(m) for m in table["m"].unique())
    lines = [
        f"{path}: A4 concentration file, {limit['activation']} depth {limit['depth']} "
        f"scheme {limit['scheme']}",
        *provenance_lines(attrs),
        f"  widths {widths}, {table['seed'].nunique()} draws, {len(table)} rows",
        f"  lambda_S {limit['lambda_S']:.4g}, kernel set {tuple(limit['x'].shape)}",
    ]
    if len(table):
        worst = table.groupby("layer_name")["rel_error"].max()
        lines.append("  largest rel_error per layer: "
                     + ", ".join(f"{k} {v:.3g}" for k, v in worst.items()))  # fmt: skip
    return Inspection(path, "concentration", True, "\n".join(lines))


def _table(path: str, rows: int) -> Inspection:
    frame = read_table(path)  # parquet page checksums
    name = os.path.basename(path)
    what = describe_table(name)
    head = f"{path}: table {name}" + (f" ({what})" if what else "") + (
        f", {len(frame)} rows x {frame.shape[1]} columns"
    )
    lines = [head, *provenance_lines(frame.attrs.get("provenance"))]
    if name.endswith(".csv"):
        lines.append("  (its manifest.json holds its sha256: `lazyphase verify` checks it)")
    for col in frame.columns:
        lines.append(f"  {col:<24} {frame[col].dtype}")
    if "status" in frame.columns and {"file", "replica"} <= set(frame.columns):
        counts = frame.drop_duplicates(["file", "replica"])["status"].value_counts()
        lines.append("  replicas by status: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return Inspection(path, "table", True, "\n".join(lines))


def _manifest(path: str, rows: int) -> Inspection:
    doc = read_manifest(path)
    lines = [f"{path}: manifest (version {doc['manifest_version']}), sha256 of "
             f"{len(doc['files'])} tables and figures",
             f"  code   {doc.get('code') or 'unknown'}"]  # fmt: skip
    return Inspection(path, "manifest", True, "\n".join(lines))


def _checkpoint(path: str, rows: int) -> Inspection:
    from lazyphase.core.train import read_checkpoint, segments_text

    try:  # tensors, numpy arrays, numbers and strings only: nothing of the file is executed
        state = read_checkpoint(path)
    except Exception as exc:  # a truncated zip, a pickle error, ...
        return _bad(path, "checkpoint", f"{type(exc).__name__}: {exc}")
    if not isinstance(state, dict) or not str(state.get("format", "")).startswith(
        "lazyphase-train-checkpoint"
    ):
        return Inspection(path, None, False, f"{path}: a torch file, not a lazyphase checkpoint")
    lines = [
        f"{path}: training checkpoint ({state['format']}), key {state.get('key')}",
        *provenance_lines(state.get("provenance")),
        f"  step {state.get('step')}, {float(state.get('elapsed', 0.0)):.1f} s of training",
        f"  segments: {segments_text(state.get('history') or [])}",
        "  the job resumes from it when rerun with the same cells, code, torch and device type "
        "(docs/checkpoints.md)",
    ]
    return Inspection(path, "checkpoint", True, "\n".join(lines))


def format_run(path: str, max_rows: int = 12) -> str:
    """A readable summary of a run file: parameters, status and trajectories (the whole file
    is read, so every checksum is verified)."""
    run = load_run(path)
    a = run.attrs
    lines = [f"{path}: run file (schema {a['schema_version']}, lazyphase "
             f"{a['lazyphase_version']})", *provenance_lines(a)]  # fmt: skip
    skip = {"config_json", "status", "complete", "schema_version", "lazyphase_version",
            "attrs_sha256", *PROVENANCE_KEYS}  # fmt: skip
    params = {k: v for k, v in sorted(a.items()) if k not in skip and k != "gram_normalization"}
    for k, v in params.items():
        if isinstance(v, np.ndarray):
            v = np.array2string(v, precision=4, separator=", ")
        lines.append(f"  {k:<18} {v}")
    steps = run["trajectory/step"]
    rows = np.unique(np.linspace(0, len(steps) - 1, min(max_rows, len(steps))).round().astype(int))
    layers = layer_names(int(a["depth"]))
    for r, seed in enumerate(run["replicas/seed"]):
        lines.append(
            f"replica {r} (seed {seed}): status {a['status'][r]} at step "
            f"{run['replicas/final_step'][r]}, lr0 {run['replicas/lr0'][r]:.4g}, "
            f"output std at init {run['replicas/output_std0'][r]:.4g}"
        )
        head = f"  {'step':>7} {'t':>10} {'train':>10} {'test':>10} " + " ".join(
            f"{'RD(' + n + ')':>10}" for n in layers
        )
        lines.append(head)
        for i in rows:
            rd = " ".join(f"{x:10.3e}" for x in run["trajectory/rd"][r, i])
            lines.append(
                f"  {steps[i]:7d} {run['trajectory/t'][r, i]:10.3e} "
                f"{run['trajectory/train_loss'][r, i]:10.3e} "
                f"{run['trajectory/test_loss'][r, i]:10.3e} {rd}"
            )
    events = run.arrays.get("events")
    if events is not None and len(events):
        lines.append(
            f"safeguard events: {len(events)} (first: replica {events[0]['replica']}, "
            f"step {events[0]['step']}, {events[0]['kind'].decode()})"
        )
    return "\n".join(lines)


_READERS: dict[str, Callable[[str, int], Inspection]] = {
    "run": _run,
    "dataset": _dataset,
    "concentration": _concentration,
    "table": _table,
    "manifest": _manifest,
    "checkpoint": _checkpoint,
}
_ERRORS = (RunFileError, ConcentrationFileError, TableFileError)


def file_kind(path: str) -> str | None:
    """The kind of ``path`` from its name, and for ``.h5`` its layout (None: unknown);
    raises OSError when an ``.h5`` file cannot be opened."""
    name = os.path.basename(path)
    if name.endswith((".parquet", ".csv")):
        return "table"
    if name.endswith(".json"):
        return "manifest"
    if name.endswith(".pt") or ".pt.chunk" in name:
        return "checkpoint"
    if name.endswith((".h5", ".hdf5")):
        return hdf5_kind(path)
    return None


def inspect_file(path: str | os.PathLike, rows: int = 12) -> Inspection:
    """Identify ``path``, verify it with its reader and describe it."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return Inspection(path, None, False, f"{path}: no such file")
    try:
        kind = file_kind(path)
    except (OSError, ValueError) as exc:
        return _bad(path, None, f"not a readable HDF5 file ({exc}); a truncated or damaged file")
    if kind is None and path.endswith((".h5", ".hdf5")):
        return Inspection(
            path, None, False,
            f"{path}: not a lazyphase run file, nor a data set or concentration file (an HDF5 "
            "file without their root attributes)",
        )  # fmt: skip
    if kind is None:
        return Inspection(
            path, None, False,
            f"{path}: not a file lazyphase writes (run, data set and concentration files, "
            "parquet/CSV tables, manifest.json, .pt checkpoints)",
        )  # fmt: skip
    try:
        return _READERS[kind](path, rows)
    except _ERRORS as exc:
        return _bad(path, kind, exc)
    except (OSError, KeyError, ValueError, TypeError) as exc:
        return _bad(path, kind, f"{type(exc).__name__}: {exc}")
