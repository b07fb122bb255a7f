"""Tables, figures and manifests: every non-HDF5 file the pipeline writes (docs/integrity.md).

- :func:`atomic_path`: the caller writes a temporary sibling, renamed into place on success;
  on any error (a full disk, a file-size limit) the temporary file is removed and nothing is
  left under the final name.
- :func:`write_table` / :func:`read_table`: the one pair through which the package writes and
  reads its tables. Parquet is written with page checksums (CRC32 of every data page) and read
  with their verification; CSV is written atomically (its sha256 goes into the manifest).
- :func:`write_manifest` / :func:`check_manifest`: ``results/<exp>/manifest.json``, the sha256
  of every table and figure of an experiment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from lazyphase.store.atomic import atomic_path
from lazyphase.store.provenance import KEYS as PROVENANCE_KEYS
from lazyphase.store.provenance import provenance, shown

MANIFEST_VERSION = 1


class TableFileError(RuntimeError):
    """A table (or manifest) is unreadable, corrupt or does not match; the message names it."""


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``frame`` to ``path`` (``.parquet`` with page checksums, else CSV without the
    index), atomically, with the provenance of store/provenance.py: parquet key-value metadata
    ``lazyphase_code`` / ``lazyphase_git``, or the CSV's two trailing columns of those names."""
    write_tables({os.fspath(path): frame})


def write_tables(frames: Mapping[str, pd.DataFrame]) -> None:
    """Write several tables (path → frame) as one unit: every one to its temporary name
    first, then all renamed; a failure on any leaves none of them changed."""
    with contextlib.ExitStack() as stack:
        for path, frame in frames.items():
            tmp = stack.enter_context(atomic_path(path))
            _write(frame, os.fspath(path), tmp)


def _write(frame: pd.DataFrame, path: str, tmp: str) -> None:
    prov = provenance()
    frame = frame.drop(columns=[k for k in PROVENANCE_KEYS if k in frame.columns])
    if path.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=None)
        meta = {
            **(table.schema.metadata or {}),
            **{k.encode(): v.encode() for k, v in prov.items()},
        }
        pq.write_table(table.replace_schema_metadata(meta), tmp, write_page_checksum=True)
    else:
        # two trailing columns, the same value on every row (docs/tables.md)
        frame.assign(**prov).to_csv(tmp, index=False)


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table of :func:`write_table`; parquet page checksums are verified.

    The provenance (parquet metadata, or the trailing CSV columns, which are dropped) is in
    ``frame.attrs["provenance"]`` (``unknown`` for a table written without it).

    Raises:
        TableFileError: naming the file, when it is missing, unreadable or fails a checksum.
    """
    path = os.fspath(path)
    try:
        if path.endswith(".parquet"):
            import pyarrow.parquet as pq

            frame = pd.read_parquet(path, engine="pyarrow", page_checksum_verification=True)
            meta = pq.read_schema(path).metadata or {}
            prov = {k: meta[k.encode()].decode() for k in PROVENANCE_KEYS if k.encode() in meta}
        else:
            frame = pd.read_csv(path, dtype={k: str for k in PROVENANCE_KEYS})
            prov = {}
            for k in PROVENANCE_KEYS:
                if k in frame.columns:
                    values = frame.pop(k)
                    if len(values):  # an empty table keeps no value: unknown
                        prov[k] = "" if values.isna().all() else values.dropna().iloc[0]
    except FileNotFoundError as exc:
        raise TableFileError(f"{path}: missing table; rerun the workflow") from exc
    except Exception as exc:  # pyarrow raises OSError / ArrowInvalid; pandas ParserError, ...
        msg = " ".join(str(exc).split())
        raise TableFileError(
            f"{path}: unreadable or corrupted table ({type(exc).__name__}: {msg}); "
            "delete it and rerun the workflow"
        ) from exc
    frame.attrs["provenance"] = shown(prov)
    return frame


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(
    path: str | os.PathLike, files: Sequence[str | os.PathLike], code: str = ""
) -> dict:
    """Write ``path`` (JSON): the sha256 and size of each of ``files``, keyed by their path
    relative to the manifest's folder, with the code fingerprint that wrote them."""
    path = os.fspath(path)
    base = os.path.dirname(os.path.abspath(path))
    entries = {}
    for f in sorted(os.fspath(x) for x in files):
        rel = os.path.relpath(os.path.abspath(f), base)
        entries[rel] = {"sha256": sha256_file(f), "bytes": os.path.getsize(f)}
    doc = {"manifest_version": MANIFEST_VERSION, "code": code, "files": entries}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest at ``path`` (raises :class:`TableFileError` naming it)."""
    path = os.fspath(path)
    try:
        doc = json.loads(Path(path).read_text())
        if doc.get("manifest_version") != MANIFEST_VERSION or not isinstance(doc["files"], dict):
            raise ValueError(f"manifest_version {doc.get('manifest_version')!r}")
        return doc
    except FileNotFoundError as exc:
        raise TableFileError(f"{path}: missing manifest") from exc
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise TableFileError(f"{path}: unreadable manifest ({exc})") from exc


def check_manifest(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(file, problem)`` for every file of the manifest that is missing or whose sha256
    differs (raises :class:`TableFileError` when the manifest itself is unreadable)."""
    doc = read_manifest(path)
    base = os.path.dirname(os.path.abspath(os.fspath(path)))
    out = []
    for rel, entry in sorted(doc["files"].items()):
        full = os.path.join(base, rel)
        shown = os.path.join(os.path.dirname(os.fspath(path)), rel)
        if not os.path.exists(full):
            out.append((shown, "listed in the manifest but missing"))
        elif sha256_file(full) != entry.get("sha256"):
            out.append((shown, "sha256 differs from the manifest (changed after it was written)"))
    return out
