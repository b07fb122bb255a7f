"""Every file format of the pipeline; the only package that imports h5py.

``lazyphase.store.load_run`` and friends stay importable from here (the run-file API of
:mod:`lazyphase.store.runs`). They are loaded on first use, so that the jobs that only read or
write tables (aggregation, figures, manifests) do not import torch through this package.
"""

import importlib
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "Run",
    "RunFileError",
    "load_run",
    "read_datasets",
    "write_cell",
    "write_datasets",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("lazyphase.store.runs"), name)
    raise AttributeError(f"module 'lazyphase.store' has no attribute {name!r}")
