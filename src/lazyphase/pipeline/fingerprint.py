"""The code fingerprint: enters every rule's ``params`` so an edit of the library reruns what it
affects (Snakemake's ``--rerun-triggers params``)."""

from __future__ import annotations

import hashlib
from importlib import resources
from importlib.abc import Traversable

from lazyphase import __version__

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
