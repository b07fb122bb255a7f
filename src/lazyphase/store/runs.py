"""Run files: one HDF5 file per grid cell, every replica inside (layout in docs/hdf5.md).

A file is written under a temporary name in the same folder and renamed into place; the root
attribute ``complete = True`` is written last, so a reader never mistakes a partial file for
data. Datasets are written without timestamps, so the same run gives identical datasets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from lazyphase import __version__
from lazyphase.core.data import Dataset, dataset_key, make_dataset
from lazyphase.core.model import effective_s, layer_names, layer_rates
from lazyphase.core.parameterization import label as parameterization_label
from lazyphase.core.schemes import luo_gamma_prime, scheme_label
from lazyphase.core.training.results import BatchRun
from lazyphase.store.h5 import (
    atomic_h5,
    check_attr_sizes,
    check_seal,
    read_all,
    write_dataset,
)

#: 2: the ``linearized`` group and ``replicas/test_output0``/``test_output_final`` (issue 17).
SCHEMA_VERSION = 3


class RunFileError(RuntimeError):
    """A run file is missing, partial, corrupt or of another schema; the message names it."""


def _ds(group: h5py.Group, name: str, data: Any) -> None:
    # no compression: float64 weights and trajectories gain ~10% with gzip+shuffle at 6x the
    # write time (a 63-replica job spent 1.8 s of its 5 s outside training in gzip)
    # fletcher32 checksum on every chunk (store/h5.py write_dataset; docs/integrity.md)
    write_dataset(group, name, np.asarray(data))


def _attr_value(v: Any) -> Any:
    if isinstance(v, Mapping):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, (list, tuple)):
        return np.asarray(v)
    return v


def cell_attrs(cell: Mapping[str, Any]) -> dict[str, Any]:
    """The root attributes holding the cell parameters (None values are left out;
    ``config_json`` keeps the whole cell)."""
    out = {k: _attr_value(v) for k, v in cell.items() if v is not None}
    out["scheme"] = scheme_label(cell["scheme"])
    if cell.get("parameterization") is not None:
        out["parameterization"] = parameterization_label(cell["parameterization"])
    out["config_json"] = json.dumps(cell, sort_keys=True)
    return out


def write_cell(path: str, run: BatchRun, index: Sequence[int], cell: Mapping[str, Any]) -> None:
    """Write the replicas ``index`` of ``run`` (all of one cell) to ``path`` atomically."""
    idx = np.asarray(index)
    res = run.result
    reps = [run.replicas[i] for i in idx]
    scales = reps[0].scales
    with atomic_h5(path) as f:
        for k, v in cell_attrs(cell).items():
            f.attrs[k] = v
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["lazyphase_version"] = __version__
        f.attrs["status"] = np.array([res.status[i] for i in idx], dtype=h5py.string_dtype())
        f.attrs["kappa"] = scales.kappa
        f.attrs["alpha"] = scales.alpha
        f.attrs["betas"] = np.asarray(scales.betas)
        f.attrs["gammas"] = np.asarray(scales.gammas(cell["m"]))
        if cell["model"] == "chizat":
            # Chizat's multiplier A = 1/alpha; s and kappa as realized (cell['s'] unused)
            f.attrs["chizat_multiplier"] = 1.0 / scales.alpha
            f.attrs["s"] = effective_s(cell, scales)
        if cell.get("parameterization") is not None:
            # docs/conventions.md §7: s is derived, each layer steps η r_l
            f.attrs["s"] = effective_s(cell, scales)
            f.attrs["layer_rates"] = np.asarray(layer_rates(cell))
        if (gamma_prime := luo_gamma_prime(cell["scheme"])) is not None:
            f.attrs["gamma_luo"] = 1.0 - cell["s"]
            f.attrs["gamma_prime"] = gamma_prime
        f.attrs["seconds"] = res.seconds
        data = f.create_group("data")
        for name in ("x_train", "y_train", "x_test", "y_test", "x_kernel"):
            _ds(data, name, np.stack([getattr(r.data, name).numpy() for r in reps]))
        rep = f.create_group("replicas")
        _ds(rep, "seed", np.array([r.seed for r in reps], dtype=np.int64))
        _ds(rep, "final_step", res.final_step[idx])
        _ds(rep, "lr0", run.lr0[idx])
        _ds(rep, "output_std0", run.output_std0[idx])
        _ds(rep, "theta0_eigvals", run.theta0_eigs[idx])
        _ds(rep, "best_test_loss", res.best_test_loss[idx])
        _ds(rep, "best_test_step", res.best_test_step[idx])
        _ds(rep, "tail_train_loss", res.tail_train_loss[idx])
        _write_weights(f, run, idx, cell)
        tr = f.create_group("trajectory")
        _ds(tr, "step", res.steps)
        for name, arr in (
            ("t", res.t), ("lr", res.lr), ("train_loss", res.train_loss),
            ("test_loss", res.test_loss), ("rd", res.rd),
        ):  # fmt: skip
            _ds(tr, name, arr[idx])
        gram = f.create_group("gram")
        _ds(gram, "step", res.gram_steps)
        _ds(gram, "theta", res.gram[idx])
        gram.attrs["normalization"] = run.gram_normalization[idx[0]]
        _write_events(f, res.events, idx)
        _write_linearized(f, run, idx)


_DATA_FIELDS = ("x_train", "y_train", "x_test", "y_test", "x_kernel")


def write_datasets(path: str, cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """Draw every distinct data set the cells need and write them to ``path`` atomically,
    one group per :func:`~lazyphase.core.data.dataset_key`. Returns the keys."""
    sets: dict[str, Dataset] = {}
    for cell in cells:
        for seed in cell["seeds"]:
            key = dataset_key(cell, seed)
            if key not in sets:
                sets[key] = make_dataset(cell, seed)
    with atomic_h5(path) as f:
        for key, ds in sorted(sets.items()):
            g = f.create_group(key)
            for name in _DATA_FIELDS:
                _ds(g, name, getattr(ds, name).numpy())
        f.attrs["schema_version"] = SCHEMA_VERSION
    return sorted(sets)


def read_datasets(path: str) -> dict[str, Dataset]:
    """The data sets written by :func:`write_datasets` (errors name the file; checksums and
    the seal of store/h5.py verified)."""
    import torch

    def fail(msg: str) -> RunFileError:
        return RunFileError(" ".join(f"{path}: {msg}; delete it and rerun".split()))

    try:
        with h5py.File(path, "r") as f:
            if not f.attrs.get("complete", False):
                raise fail("incomplete data set file")
            check_attr_sizes(f, fail)
            values = read_all(f, fail)
            check_seal(f, values, fail)
            return {
                key: Dataset(**{n: torch.from_numpy(values[f"{key}/{n}"]) for n in _DATA_FIELDS})
                for key in f
            }
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise fail(f"not a readable data set file ({exc})") from exc


def _write_weights(f: h5py.File, run: BatchRun, idx: np.ndarray, cell: Mapping[str, Any]) -> None:
    names = layer_names(cell["depth"])
    w = f.create_group("weights")
    init = [p[idx].numpy() for p in run.params0]
    final = [p[idx].to("cpu").double().numpy() for p in run.result.params_final]
    _ds(
        w,
        "norms_init",
        np.stack([np.linalg.norm(p.reshape(len(idx), -1), axis=1) for p in init], 1),
    )
    _ds(
        w,
        "norms_final",
        np.stack([np.linalg.norm(p.reshape(len(idx), -1), axis=1) for p in final], 1),
    )
    size = sum(p.size for p in init)
    w.attrs["stored"] = size <= cell["weights_cap"]
    w.attrs["names"] = np.array(names, dtype=h5py.string_dtype())
    if size <= cell["weights_cap"]:
        for group, arrays in (("init", init), ("final", final)):
            g = w.create_group(group)
            for name, arr in zip(names, arrays):
                _ds(g, name, arr)
        snaps = run.result.weights
        if snaps is not None:
            if size * snaps[0].shape[1] > cell["weights_cap"]:
                raise ValueError(
                    f"weight_snapshots: {size} parameters x {snaps[0].shape[1]} snapshots exceed "
                    f"weights_cap={cell['weights_cap']}; lower n_snapshots or raise weights_cap"
                )
            g = w.create_group("snapshots")
            for name, arr in zip(names, snaps):
                _ds(g, name, arr[idx])


def _write_linearized(f: h5py.File, run: BatchRun, idx: np.ndarray) -> None:
    """The linearized run (docs/hdf5.md, docs/conventions.md §5) and the network's own test
    outputs at init and at the end."""
    lin = run.linearized
    if lin is None:
        raise ValueError("BatchRun without its linearized run (train_replicas computes it)")
    rep = f["replicas"]
    _ds(rep, "test_output0", lin.test_output0[idx])
    _ds(rep, "test_output_final", lin.test_output_final[idx])
    g = f.create_group("linearized")
    _ds(g, "test_output", lin.test_output[idx])
    _ds(g, "train_loss", lin.train_loss[idx])
    _ds(g, "test_loss", lin.test_loss[idx])
    if lin.test_output_converged is not None:
        _ds(g, "test_output_converged", lin.test_output_converged[idx])
    g.attrs["skipped"] = lin.skipped


def _write_events(f: h5py.File, events: Sequence[Any], idx: np.ndarray) -> None:
    local = {int(g): i for i, g in enumerate(idx)}
    rows = [e for e in events if e.replica in local]
    dt = np.dtype(
        [("replica", "i8"), ("step", "i8"), ("kind", "S8"), ("lr_old", "f8"), ("lr_new", "f8"),
         ("loss_prev", "f8"), ("loss_new", "f8")]
    )  # fmt: skip
    arr = np.array(
        [(local[e.replica], e.step, e.kind.encode(), e.lr_old, e.lr_new, e.loss_prev, e.loss_new)
         for e in rows],
        dtype=dt,
    )  # fmt: skip
    _ds(f, "events", arr)


@dataclass
class Run:
    """A loaded run file: ``attrs`` (root attributes) and ``arrays`` (``'group/name'`` → array)."""

    path: str
    attrs: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def cell(self) -> dict[str, Any]:
        """The cell parameters exactly as given to the trainer."""
        return json.loads(self.attrs["config_json"])

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]


_REQUIRED = (
    "trajectory/step", "trajectory/t", "trajectory/lr", "trajectory/train_loss",
    "trajectory/test_loss", "trajectory/rd", "gram/step", "gram/theta", "replicas/seed",
    "replicas/final_step", "data/x_train", "data/y_train", "data/x_kernel",
    "replicas/test_output0", "replicas/test_output_final", "linearized/test_output",
    "linearized/train_loss", "linearized/test_loss",
)  # fmt: skip


_FLOAT = (
    "trajectory/t", "trajectory/lr", "trajectory/train_loss", "trajectory/test_loss",
    "trajectory/rd", "gram/theta", "data/x_train", "data/y_train", "data/x_kernel",
)  # fmt: skip
_INT = ("trajectory/step", "gram/step", "replicas/seed", "replicas/final_step")


def load_run(path: str, *, gram: bool = True) -> Run:
    """Read and validate a run file (``gram=False`` skips the large ``gram/theta``).

    Every dataset read is checked against its fletcher32 checksum and its ``sha256``, the
    attributes and layout against ``attrs_sha256`` (store/h5.py, docs/integrity.md).

    Raises:
        RunFileError: naming the file (and the dataset), when it is unreadable, not a
            lazyphase run file, incomplete, of another schema version, corrupted, changed
            after writing, or its shapes or dtypes disagree with its attributes.
    """
    hint = "delete it and rerun the workflow to rebuild it"

    def fail(msg: str) -> RunFileError:
        return RunFileError(" ".join(f"{path}: {msg}; {hint}".split()))  # one line

    try:
        fh = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise RunFileError(f"{path}: not a readable HDF5 run file ({exc}); {hint}") from exc
    with fh as f:
        try:
            return _load(f, path, gram, fail)
        except RunFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise fail(f"malformed run file ({type(exc).__name__}: {exc})") from exc


def _load(f: h5py.File, path: str, gram: bool, fail: Any) -> Run:
    if "schema_version" not in f.attrs and "lazyphase_version" not in f.attrs:
        raise fail("not a lazyphase run file (an HDF5 file without its root attributes)")
    check_attr_sizes(f, fail)
    attrs = {k: _plain(v) for k, v in f.attrs.items()}
    if not attrs.get("complete", False):
        raise fail("incomplete run file (attribute 'complete' missing)")
    if attrs.get("schema_version") != SCHEMA_VERSION:
        version = attrs.get("schema_version")
        older = {1: " (written before the linearized run and the checksums were stored)",
                 2: " (written before the checksums were stored)"}.get(version, "")  # fmt: skip
        raise fail(f"schema_version {version!r}{older}, this lazyphase reads {SCHEMA_VERSION}")
    arrays = read_all(f, fail, skip=() if gram else ("gram/theta",))
    missing = [k for k in _REQUIRED if k not in arrays and (gram or k != "gram/theta" or k not in f)]
    if missing or "gram" not in f or "normalization" not in f["gram"].attrs:
        raise fail(f"missing datasets {missing or ['gram (attribute normalization)']}")
    norm = np.asarray(f["gram"].attrs["normalization"])
    _check_shapes(path, attrs, arrays)
    check_seal(f, arrays, fail)
    attrs["gram_normalization"] = norm
    if "linearized" in f:
        attrs["linearized_skipped"] = _plain(f["linearized"].attrs.get("skipped", ""))
    return Run(path, attrs, arrays)


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray) and v.dtype.kind == "O":
        return [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _check_shapes(path: str, attrs: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    n_rep = len(attrs["seeds"])
    layers = int(attrs["depth"]) + 1
    n_snap = arrays["trajectory/step"].shape[0]
    expect = {
        "trajectory/t": (n_rep, n_snap),
        "trajectory/train_loss": (n_rep, n_snap),
        "trajectory/rd": (n_rep, n_snap, layers),
        "replicas/seed": (n_rep,),
        "data/y_train": (n_rep, int(attrs["n"])),
        "linearized/train_loss": (n_rep, n_snap),
        "linearized/test_loss": (n_rep, n_snap),
        "linearized/test_output": (n_rep, n_snap, int(attrs["n_test"])),
        "replicas/test_output_final": (n_rep, int(attrs["n_test"])),
    }
    if "linearized/test_output_converged" in arrays:  # optional (older files lack it)
        expect["linearized/test_output_converged"] = (n_rep, int(attrs["n_test"]))
    if "gram/theta" in arrays:
        n_k = arrays["data/x_kernel"].shape[1]
        expect["gram/theta"] = (n_rep, arrays["gram/step"].shape[0], layers, n_k, n_k)
    for key, shape in expect.items():
        if arrays[key].shape != shape:
            raise RunFileError(
                f"{path}: dataset {key} has shape {arrays[key].shape}, expected {shape} "
                "from the file's attributes; delete it and rerun the workflow to rebuild it"
            )
    bad = [k for k in _FLOAT if k in arrays and arrays[k].dtype.kind != "f"]
    bad += [k for k in _INT if k in arrays and arrays[k].dtype.kind not in "iu"]
    if bad:
        raise RunFileError(
            f"{path}: dataset {bad[0]} has dtype {arrays[bad[0]].dtype}, expected "
            f"{'float' if bad[0] in _FLOAT else 'integer'}; delete it and rerun the workflow"
        )
    if len(attrs["status"]) != n_rep:
        raise RunFileError(
            f"{path}: attribute status has {len(attrs['status'])} entries, expected {n_rep}"
        )


@dataclass(frozen=True)
class RunCost:
    """What a finished run file says about its cost (:func:`read_run_cost`): the cell, the
    steps each replica took (``steps``, shape ``(replicas,)``), its ``status`` and the
    training ``seconds`` of the batch that trained it, on ``device`` with ``threads``."""

    path: str
    cell: dict[str, Any]
    steps: np.ndarray
    status: list[str]
    seconds: float
    device: str
    threads: int | None

    @property
    def max_steps(self) -> int:
        return int(self.cell["max_steps"])

    @property
    def replicas(self) -> int:
        return len(self.steps)


def read_run_cost(path: str) -> RunCost:
    """The cost facts of a complete run file, without reading its trajectories or weights
    (``replicas/final_step`` and root attributes only; checksums are left to :func:`load_run`).

    Raises:
        RunFileError: naming the file, when it is unreadable or not a complete run file.
    """
    try:
        with h5py.File(path, "r") as f:
            if not f.attrs.get("complete", False) or "config_json" not in f.attrs:
                raise RunFileError(f"{path}: not a complete run file")
            attrs = {k: _plain(f.attrs[k]) for k in ("config_json", "status", "seconds")}
            extra = {k: _plain(f.attrs[k]) for k in ("lazyphase_device", "lazyphase_threads")
                     if k in f.attrs}  # fmt: skip
            steps = np.asarray(f["replicas/final_step"][()], dtype=np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise RunFileError(f"{path}: not a readable run file ({exc})") from exc
    threads = None
    if "lazyphase_threads" in extra:
        try:
            threads = int(json.loads(extra["lazyphase_threads"])["torch_intra_op"])
        except (ValueError, TypeError, KeyError):
            threads = None
    return RunCost(
        path, json.loads(attrs["config_json"]), steps, list(attrs["status"]),
        float(attrs["seconds"]), str(extra.get("lazyphase_device", "cpu")), threads,
    )  # fmt: skip
