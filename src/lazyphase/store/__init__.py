"""Every file format of the pipeline; the only package that imports h5py.

``lazyphase.store.load_run`` and friends stay importable from here (the run-file API of
:mod:`lazyphase.store.runs`).
"""

from lazyphase.store.runs import (
    SCHEMA_VERSION,
    Run,
    RunFileError,
    load_run,
    read_datasets,
    write_cell,
    write_datasets,
)

__all__ = [
    "SCHEMA_VERSION",
    "Run",
    "RunFileError",
    "load_run",
    "read_datasets",
    "write_cell",
    "write_datasets",
]
