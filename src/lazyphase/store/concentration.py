"""The file of one A4 group (activation, depth, scheme): the Gram-concentration table and the
limiting kernels it was compared with (layout in docs/hdf5.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np
import pandas as pd

from lazyphase.store.h5 import (
    atomic_h5,
    check_attr_sizes,
    check_seal,
    read_all,
    write_dataset,
)

#: Columns of :func:`concentration_table`, in order.
COLUMNS = (
    "activation",
    "depth",
    "scheme",
    "m",
    "seed",
    "layer",
    "layer_name",
    "rel_error",
    "lambda_min_G",
    "lambda_min_K",
    "lambda_S",
    "ok",
)
_STR_COLUMNS = ("activation", "scheme", "layer_name")
_INT_COLUMNS = ("depth", "m", "seed", "layer")


class ConcentrationFileError(RuntimeError):
    """A concentration file is missing, partial or malformed; the message names the file."""




def typed(table: pd.DataFrame) -> pd.DataFrame:
    """Columns in :data:`COLUMNS` order with fixed dtypes (str, int64, float64, bool)."""
    out = table[list(COLUMNS)].copy()
    for c in _STR_COLUMNS:
        out[c] = out[c].astype(str)
    for c in _INT_COLUMNS:
        out[c] = out[c].astype(np.int64)
    for c in ("rel_error", "lambda_min_G", "lambda_min_K", "lambda_S"):
        out[c] = out[c].astype(np.float64)
    out["ok"] = out["ok"].astype(bool)
    return out


def write_concentration(
    path: str | os.PathLike,
    table: pd.DataFrame,
    limit: Mapping[str, Any],
    attrs: Mapping[str, Any] | None = None,
) -> None:
    """Write one ``(activation, depth, scheme)`` of A4 to ``path`` atomically.

    Layout: root attributes ``attrs`` (plus ``complete = True``, written last);
    ``table/<column>`` one dataset per column of :data:`COLUMNS` (strings as fixed-length
    UTF-8 bytes, so they carry the fletcher32 filter), the group's attribute ``columns`` keeps their order; ``kernels/limit``
    ``(L+1, n, n)`` with attributes ``lambda_S``, ``activation``, ``depth``, ``scheme``;
    ``kernels/x`` ``(n, d)``. Datasets carry no timestamps; the file is written under a
    temporary name in the same folder and renamed into place.
    """
    path = os.fspath(path)
    table = typed(table)
    meta = {}
    for key in ("activation", "depth", "scheme"):
        vals = table[key].unique()
        if len(vals) > 1:
            raise ValueError(f"{path}: a concentration file holds one {key}, the table has {vals}")
        meta[key] = limit.get(key, vals[0] if len(vals) else "")
    with atomic_h5(path) as f:
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        grp = f.create_group("table")
        for c in COLUMNS:
            if c in _STR_COLUMNS:
                # fixed-length UTF-8: variable-length strings cannot carry the checksum filter
                raw = [str(v).encode() for v in table[c].to_list()]
                width = max([len(b) for b in raw] + [1])
                write_dataset(grp, c, np.asarray(raw, dtype=f"S{width}").reshape(len(raw)))
            else:
                write_dataset(grp, c, table[c].to_numpy())
        grp.attrs["columns"] = np.asarray(COLUMNS, dtype=h5py.string_dtype())
        ker = f.create_group("kernels")
        lim = write_dataset(ker, "limit", np.asarray(limit["K"], dtype=np.float64))
        lim.attrs["lambda_S"] = float(limit["lambda_S"])
        lim.attrs["activation"] = str(meta["activation"])
        lim.attrs["depth"] = int(meta["depth"])
        lim.attrs["scheme"] = str(meta["scheme"])
        write_dataset(ker, "x", np.asarray(limit["x"], dtype=np.float64))


def read_concentration(
    path: str | os.PathLike,
) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    """Read a file of :func:`write_concentration`: ``(table, limit, attrs)``.

    ``limit`` has the keys of :func:`concentration_table` (``lambda_min`` recomputed from ``K``);
    ``attrs`` the root attributes but ``complete``.

    Raises:
        ConcentrationFileError: naming the file, when it is missing, unreadable, incomplete
            (no root attribute ``complete``) or lacks a part of the layout.
    """
    path = os.fspath(path)

    def fail(msg: str) -> ConcentrationFileError:
        return ConcentrationFileError(" ".join(f"{path}: {msg}; delete it and rerun".split()))

    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise ConcentrationFileError(f"{path}: cannot open concentration file ({err})") from err
    with f:
        try:
            return _read(f, fail)
        except ConcentrationFileError:
            raise
        except (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError) as err:
            raise fail(f"malformed concentration file ({type(err).__name__}: {err})") from err


def _read(f: h5py.File, fail: Any) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Any]]:
    if not f.attrs.get("complete", False):
        raise fail("incomplete concentration file (attribute 'complete' missing)")
    check_attr_sizes(f, fail)
    values = read_all(f, fail)
    check_seal(f, values, fail)
    grp = f["table"]
    cols = [c.decode() if isinstance(c, bytes) else str(c) for c in grp.attrs["columns"]]
    missing = [c for c in COLUMNS if c not in cols or f"table/{c}" not in values]
    if missing:
        raise fail(f"missing table columns {missing}")
    data = {}
    for c in cols:
        v = values[f"table/{c}"]
        data[c] = np.char.decode(v, "utf-8") if v.dtype.kind == "S" else v
    lim = f["kernels/limit"]
    K = values["kernels/limit"]
    limit = {
        "K": K,
        "lambda_S": float(lim.attrs["lambda_S"]),
        "x": values["kernels/x"],
        "lambda_min": np.linalg.eigvalsh(K)[:, 0],
        "activation": str(lim.attrs["activation"]),
        "depth": int(lim.attrs["depth"]),
        "scheme": str(lim.attrs["scheme"]),
    }
    attrs = {k: v for k, v in f.attrs.items() if k not in ("complete", "attrs_sha256")}
    return typed(pd.DataFrame(data)), limit, attrs
