"""The one way this package writes an HDF5 file, and the integrity checks of every reader.

Writing (:func:`atomic_h5`): under a temporary name, then renamed, so a reader never meets a
half-written file under its final name. Every dataset is written by :func:`write_dataset` with
HDF5's fletcher32 checksum filter (chunked layout; scalars and variable-length strings cannot
carry a filter and are covered by the digests below). On exit the file is *sealed*: each
dataset gets the attribute ``sha256`` (of its content), the root the attribute
``attrs_sha256`` (of every group's and dataset's path, dtype, shape, filter and attributes),
and ``complete = True`` last. See docs/integrity.md.

Reading (:func:`read_datasets_checked`, :func:`check_seal`): a dataset whose chunk fails its
fletcher32 checksum, whose content no longer matches its ``sha256``, or attributes that no
longer match ``attrs_sha256``, raise the caller's error class naming the file and the dataset.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import h5py
import numpy as np

from lazyphase.store.atomic import (  # noqa: F401  (WriteError: re-exported)
    WriteError,
    atomic_path,
    is_write_error,
    write_failed,
)
from lazyphase.store.provenance import provenance, runtime_provenance

#: Root attributes outside the attribute digest (``complete`` is written after it).
_UNSEALED = ("complete", "attrs_sha256")
#: Attributes larger than this are refused before they are read (a hostile file's "huge
#: attribute"); the largest the pipeline writes is ``config_json``, a few kB.
MAX_ATTR_BYTES = 1 << 20


def write_dataset(group: h5py.Group, name: str, data: Any, **kw: Any) -> h5py.Dataset:
    """``group.create_dataset(name, data=...)`` with the fletcher32 checksum (h5py picks the
    chunks) and no timestamps; scalars and variable-length strings, which cannot be
    filtered, are stored contiguous (their ``sha256`` attribute still covers them)."""
    arr = data if kw.get("dtype") is not None else np.asarray(data)
    dtype = np.dtype(kw.get("dtype", getattr(arr, "dtype", None)))
    vlen = h5py.check_vlen_dtype(dtype) is not None
    scalar = np.ndim(arr) == 0
    if scalar or vlen:
        return group.create_dataset(name, data=arr, track_times=False, **kw)
    kw.setdefault("chunks", chunk_shape(np.shape(arr), dtype.itemsize))
    ds = group.create_dataset(name, data=arr, track_times=False, fletcher32=True, **kw)
    if ds.dtype == arr.dtype:  # the content as a reader will get it: hash it now, no read-back
        ds.attrs["sha256"] = content_sha256(arr)
    return ds


#: Target chunk size: one chunk (one checksum, no chunk index to speak of) for datasets up to
#: this size, chunks of about this size along the leading axes above it (h5py's own guess
#: gives chunks of tens of kB, which doubled the write and read time; benchmarks/RESULTS.md).
CHUNK_BYTES = 1 << 20


def chunk_shape(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...] | bool:
    """Chunks of at most about :data:`CHUNK_BYTES`, whole trailing axes, split along the
    leading ones (``True``, h5py's guess, for empty datasets)."""
    if not shape or 0 in shape:
        return True
    chunks = list(shape)
    for ax in range(len(shape)):
        size = int(np.prod(chunks)) * itemsize
        if size <= CHUNK_BYTES:
            break
        per_unit = size // chunks[ax]
        chunks[ax] = _split(shape[ax], max(1, CHUNK_BYTES // per_unit))
    return tuple(chunks)


def _split(n: int, k: int) -> int:
    """A chunk length ``<= k`` along an axis of ``n``: a divisor of ``n`` when one is near
    ``k`` (edge chunks are stored whole, so a ragged split wastes space), else balanced."""
    if k >= n:
        return n
    d = max(x for x in range(1, k + 1) if n % x == 0)
    if 4 * d >= k:
        return d
    parts = -(-n // k)
    return -(-n // parts)


def content_sha256(value: Any) -> str:
    """sha256 of a dataset's (or attribute's) value as read by h5py, in a canonical form:
    dtype, shape and bytes; strings as their UTF-8 text."""
    return hashlib.sha256(_canonical(value)).hexdigest()


def _canonical(value: Any) -> bytes:
    a = np.asarray(value)
    if a.dtype.kind in "OUS":
        items = [x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
                 for x in a.ravel().tolist()]  # fmt: skip
        return b"str" + json.dumps([list(a.shape), items]).encode()
    head = json.dumps([_dtype_text(a.dtype), list(a.shape)])
    return head.encode() + np.ascontiguousarray(a).tobytes()


def _dtype_text(dt: np.dtype) -> str:
    """The dtype without h5py's metadata (a read-back string field carries its encoding)."""
    if dt.names:
        return "{" + ",".join(f"{n}:{_dtype_text(dt.fields[n][0])}" for n in dt.names) + "}"
    return dt.str


def _objects(f: h5py.File) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [("/", f)]
    f.visititems(lambda name, obj: out.append((name, obj)) if obj is not None else None)
    return sorted(out, key=lambda x: x[0])


def attrs_digest(f: h5py.File) -> str:
    """sha256 over every object's path, kind, dtype, shape, checksum filter and attributes
    (root ``complete`` and ``attrs_sha256`` left out)."""
    h = hashlib.sha256()
    for name, obj in _objects(f):
        if isinstance(obj, h5py.Dataset):
            desc = ["dataset", _dtype_text(obj.dtype), list(obj.shape), bool(obj.fletcher32)]
        else:
            desc = ["group"]
        h.update(json.dumps([name, *desc]).encode())
        for key in sorted(obj.attrs):
            if obj is f and key in _UNSEALED:
                continue
            h.update(json.dumps(["attr", key]).encode())
            h.update(_canonical(obj.attrs[key]))
    return h.hexdigest()


def seal(f: h5py.File) -> None:
    """Give every dataset its ``sha256`` (read back where :func:`write_dataset` did not hash
    it already) and the root ``attrs_sha256`` (called by :func:`atomic_h5` before
    ``complete``)."""
    for _, obj in _objects(f):
        if isinstance(obj, h5py.Dataset) and "sha256" not in obj.attrs:
            obj.attrs["sha256"] = content_sha256(obj[()])
    f.attrs["attrs_sha256"] = attrs_digest(f)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open ``path``'s temporary sibling for writing; seal it and rename it into place on
    success.

    The root attributes ``lazyphase_code``, ``lazyphase_git`` and those of
    ``runtime_provenance`` (store/provenance.py) are written first, the caller writes the
    content; :func:`seal` and ``complete = True`` are added on exit. On
    any error the temporary file is removed and ``path`` is left as it was.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        # which code wrote it, and how it computed (provenance.py)
        for key, value in {**provenance(), **runtime_provenance()}.items():
            f.attrs[key] = value
        yield f
        seal(f)
        f.attrs["complete"] = True


Fail = Callable[[str], Exception]


def check_attr_sizes(f: h5py.File, fail: Fail) -> None:
    """Refuse, before reading them, attributes larger than :data:`MAX_ATTR_BYTES`."""
    for name, obj in _objects(f):
        for key in obj.attrs:
            size = obj.attrs.get_id(key).get_storage_size()
            if size > MAX_ATTR_BYTES:
                where = "root attribute" if name == "/" else f"attribute of {name}:"
                raise fail(
                    f"{where} {key!r} is {size} bytes (lazyphase writes at most "
                    f"{MAX_ATTR_BYTES}); not a file this pipeline wrote"
                )


def read_dataset(ds: h5py.Dataset, fail: Fail) -> Any:
    """``ds[()]``; a chunk failing its fletcher32 checksum (or any read error) raises
    ``fail(message)`` naming the dataset."""
    try:
        return ds[()]
    except (OSError, ValueError, TypeError) as exc:
        kind = "fails its fletcher32 checksum" if ds.fletcher32 else "cannot be read"
        raise fail(f"dataset {ds.name.lstrip('/')} {kind} (corrupted on disk: {exc})") from exc


def read_all(f: h5py.File, fail: Fail, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every dataset of ``f`` but ``skip`` (``'group/name'`` → value), checksums verified."""
    out: dict[str, Any] = {}
    for name, obj in _objects(f):
        if isinstance(obj, h5py.Dataset) and name not in skip:
            out[name] = read_dataset(obj, fail)
    return out


def check_seal(f: h5py.File, values: dict[str, Any], fail: Fail) -> None:
    """Compare the seal written by :func:`seal` with the file: every dataset read (``values``)
    against its ``sha256``, the attributes and layout against ``attrs_sha256``."""
    stored = f.attrs.get("attrs_sha256")
    if stored is None:
        raise fail(
            "no attribute 'attrs_sha256' (written before checksums, or not by lazyphase); "
            "its integrity cannot be checked"
        )
    for name, value in values.items():
        want = f[name].attrs.get("sha256")
        if want is None:
            raise fail(f"dataset {name} has no 'sha256' attribute (added after writing)")
        if content_sha256(value) != _text(want):
            raise fail(
                f"dataset {name}: content differs from what lazyphase wrote (sha256 mismatch"
                + (", now holds NaN/inf" if _nonfinite(value) else "")
                + ")"
            )
    if attrs_digest(f) != _text(stored):
        raise fail(
            "attributes or layout differ from what lazyphase wrote (attrs_sha256 mismatch: "
            "an attribute, group or dataset was changed, added or removed)"
        )


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _nonfinite(value: Any) -> bool:
    a = np.asarray(value)
    return a.dtype.kind == "f" and not np.isfinite(a).all()


def hdf5_kind(path: str) -> str | None:
    """``run``, ``dataset`` or ``concentration`` from an HDF5 file's layout (None: another
    file); raises OSError when it cannot be opened as HDF5 (``lazyphase inspect``)."""
    with h5py.File(path, "r") as f:
        keys = set(f.keys())
        attrs = set(f.attrs.keys())
        if "config_json" in attrs or {"trajectory", "replicas"} & keys:
            return "run"
        if {"table", "kernels"} <= keys:
            return "concentration"
        if keys and all(k.startswith("data-") for k in keys):
            return "dataset"
        if not keys and "schema_version" in attrs and "config_json" not in attrs:
            return "dataset"  # a data set file of no data sets
    return None


def root_attrs(path: str | os.PathLike) -> dict[str, Any]:
    """The root attributes of an HDF5 file (read after its reader verified it)."""
    with h5py.File(path, "r") as f:
        return dict(f.attrs)
