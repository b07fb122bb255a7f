"""The one way this package writes an HDF5 file: under a temporary name, then renamed.

A reader therefore never meets a half-written file under its final name; the root attribute
``complete = True`` is set last, as a second guard for files copied by other tools.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import h5py


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open ``path``'s temporary sibling for writing; rename it into place on success.

    The caller writes the content; ``complete = True`` is added on exit. On any error the
    temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        with h5py.File(tmp, "w") as f:
            yield f
            f.attrs["complete"] = True
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
