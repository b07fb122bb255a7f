"""The file of one A4 group (activation, depth, scheme): the Gram-concentration table and the
limiting kernels it was compared with (layout in docs/hdf5.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np
import pandas as pd

from lazyphase.store.h5 import atomic_h5

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
    ``table/<column>`` one dataset per column of :data:`COLUMNS` (strings as UTF-8 h5py
    strings), the group's attribute ``columns`` keeps their order; ``kernels/limit``
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
                data = np.asarray(table[c].to_list(), dtype=object)
                grp.create_dataset(c, data=data, dtype=h5py.string_dtype(), track_times=False)
            else:
                grp.create_dataset(c, data=table[c].to_numpy(), track_times=False)
        grp.attrs["columns"] = np.asarray(COLUMNS, dtype=h5py.string_dtype())
        ker = f.create_group("kernels")
        lim = ker.create_dataset(
            "limit", data=np.asarray(limit["K"], dtype=np.float64), track_times=False
        )
        lim.attrs["lambda_S"] = float(limit["lambda_S"])
        lim.attrs["activation"] = str(meta["activation"])
        lim.attrs["depth"] = int(meta["depth"])
        lim.attrs["scheme"] = str(meta["scheme"])
        ker.create_dataset(
            "x", data=np.asarray(limit["x"], dtype=np.float64), track_times=False
        )


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
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ConcentrationFileError(f"{path}: cannot open concentration file ({err})") from err
    with f:
        if not f.attrs.get("complete", False):
            raise ConcentrationFileError(
                f"{path}: incomplete concentration file (attribute 'complete' missing); "
                "delete it and rerun"
            )
        try:
            grp = f["table"]
            cols = [c.decode() if isinstance(c, bytes) else str(c) for c in grp.attrs["columns"]]
            data = {}
            for c in cols:
                ds = grp[c]
                data[c] = ds.asstr()[()] if h5py.check_string_dtype(ds.dtype) else ds[()]
            lim = f["kernels/limit"]
            K = lim[()]
            limit = {
                "K": K,
                "lambda_S": float(lim.attrs["lambda_S"]),
                "x": f["kernels/x"][()],
                "lambda_min": np.linalg.eigvalsh(K)[:, 0],
                "activation": str(lim.attrs["activation"]),
                "depth": int(lim.attrs["depth"]),
                "scheme": str(lim.attrs["scheme"]),
            }
        except KeyError as err:
            raise ConcentrationFileError(f"{path}: malformed concentration file ({err})") from err
        attrs = {k: v for k, v in f.attrs.items() if k != "complete"}
    return typed(pd.DataFrame(data)), limit, attrs


