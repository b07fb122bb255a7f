"""Writing files atomically: under a temporary sibling name, renamed onto the final name only
when complete, so a failure (a full disk, a file-size limit, a crash) never leaves a partial
file where a reader would take it for a result. The one home of that logic: HDF5 files
(:func:`lazyphase.store.h5.atomic_h5`), tables, manifests and figures build on
:func:`atomic_path`."""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary sibling of ``path`` to write; rename it onto ``path`` on success,
    remove it on any error (``path`` is then left as it was)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        # HDF5 buffers its writes: a full disk often surfaces at close, as RuntimeError
        if isinstance(exc, WriteError) or not is_write_error(exc):
            raise
        raise write_failed(path, exc) from exc
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class WriteError(OSError):
    """Writing a file failed (disk full, file-size limit, I/O error): the partial temporary
    file was removed and nothing is under the final name; the message names the file."""


def write_failed(path: str, exc: BaseException) -> WriteError:
    """The :class:`WriteError` of a failed write of ``path`` (``exc``: the cause)."""
    err = getattr(exc, "errno", None)
    if not err:  # HDF5's message holds "errno = 27, error message = 'File too large'"
        found = re.search(r"errno = (\d+)", str(exc))
        err = int(found.group(1)) if found else None
    why = os.strerror(err) if err else " ".join(str(exc).split())
    return WriteError(
        err or 5,
        f"{path}: write failed ({why}); the partial file was removed, nothing was written "
        "under this name; free space (or raise the limit) and rerun",
    )


def is_write_error(exc: BaseException) -> bool:
    """A full disk, a file-size limit, a quota or an I/O error (h5py reports them as OSError
    whose message holds the C library's text, often without ``errno``)."""
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO):
        return True
    text = str(exc)
    return any(
        w in text
        for w in ("No space left", "File too large", "quota exceeded", "Input/output error",
                  "write failed")
    )  # fmt: skip
