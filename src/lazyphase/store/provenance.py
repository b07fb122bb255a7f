"""Provenance: which code wrote a file.

Every file the package writes carries two values (docs/hdf5.md, docs/tables.md):

- ``lazyphase_code``: the code fingerprint, ``<version>-<sha256 of every .py/.yaml file of the
  package>[:12]`` (:func:`code_fingerprint`; it also enters every Snakemake rule's ``params``);
- ``lazyphase_git``: ``git describe --always --dirty`` of the checkout the package was imported
  from, or ``""`` when it is not in a git checkout (an installed wheel) or git is unavailable
  (:func:`git_describe`; never raises).

Where they go: HDF5 files (run, data set, concentration files) as root attributes, parquet
tables as key-value metadata of the file, CSV tables as two trailing columns (plain
``pandas.read_csv`` and the report's table view read them as any other column). Files written
before issue 19 have none; readers then report ``unknown``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from lazyphase import __version__

#: The names of the two values: HDF5 root attributes, parquet metadata keys, CSV columns.
CODE_KEY = "lazyphase_code"
GIT_KEY = "lazyphase_git"
KEYS = (CODE_KEY, GIT_KEY)
#: What readers report for a file written without provenance.
UNKNOWN = "unknown"

_SUFFIXES = (".py", ".yaml")


def _walk(node: Traversable, prefix: str = "") -> list[tuple[str, Traversable]]:
    """``(relative path, file)`` of every source file below ``node``, sorted, any depth."""
    out = []
    for entry in node.iterdir():
        rel = f"{prefix}{entry.name}"
        if entry.is_dir() and entry.name != "__pycache__":
            out += _walk(entry, rel + "/")
        elif entry.name.endswith(_SUFFIXES):
            out.append((rel, entry))
    return sorted(out, key=lambda pair: pair[0])


def code_fingerprint() -> str:
    """``<version>-<sha256 of every .py/.yaml file of the package, at any depth>[:12]``."""
    h = hashlib.sha256()
    for rel, entry in _walk(resources.files("lazyphase")):
        h.update(rel.encode())
        h.update(entry.read_bytes())
    return f"{__version__}-{h.hexdigest()[:12]}"


@functools.lru_cache(maxsize=1)
def git_describe() -> str | None:
    """``git describe --always --dirty`` of the checkout holding this package (``src/lazyphase``
    at its top level), or None: not a checkout, no git, or any failure (never raises)."""
    pkg = Path(__file__).resolve().parents[1]
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # no index.lock: jobs run in parallel

    def git(*args: str) -> str:
        out = subprocess.run(
            ["git", "-C", str(pkg), *args], capture_output=True, text=True, timeout=10, env=env
        )
        if out.returncode != 0:
            raise OSError(out.stderr.strip())
        return out.stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel")).resolve()
        if top / "src" / "lazyphase" != pkg:  # e.g. a venv inside some other repository
            return None
        return git("describe", "--always", "--dirty") or None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


@functools.lru_cache(maxsize=1)
def _cached_code() -> str:
    return code_fingerprint()


def provenance() -> dict[str, str]:
    """``{lazyphase_code: fingerprint, lazyphase_git: describe or ""}`` of this process's code
    (computed once per process)."""
    return {CODE_KEY: _cached_code(), GIT_KEY: git_describe() or ""}


def shown(values: dict[str, object] | None) -> dict[str, str]:
    """Provenance values as a reader shows them: ``unknown`` for a missing one (a file written
    before issue 19), ``(not a git checkout)`` for an empty ``lazyphase_git``."""
    values = values or {}
    out = {}
    for key in KEYS:
        v = values.get(key)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        if v is None or (isinstance(v, float) and v != v):  # missing or NaN (CSV)
            out[key] = UNKNOWN
        elif key == GIT_KEY and str(v) == "":
            out[key] = "(not a git checkout)"
        else:
            out[key] = str(v)
    return out
