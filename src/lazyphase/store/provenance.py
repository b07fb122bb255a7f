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

HDF5 files also record how the numbers were computed (:func:`runtime_provenance`, docs/hdf5.md,
docs/reproducibility.md): ``lazyphase_torch``, ``lazyphase_blas``, ``lazyphase_cpu``,
``lazyphase_device``, ``lazyphase_threads`` and ``lazyphase_determinism``, as this process had
them when it wrote the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
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


#: The root attributes of :func:`runtime_provenance` (HDF5 files only).
RUNTIME_KEYS = (
    "lazyphase_torch",
    "lazyphase_blas",
    "lazyphase_cpu",
    "lazyphase_device",
    "lazyphase_threads",
    "lazyphase_determinism",
)
#: The environment variables that set thread counts of the libraries torch uses.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: The environment variables that pick other CPU kernels (what a CPU without AVX-512 runs).
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


@functools.lru_cache(maxsize=1)
def _torch_build() -> tuple[str, str]:
    """``(torch version, BLAS text)`` of the torch build (from ``torch.__config__.show()``)."""
    import torch

    shown = torch.__config__.show()
    info = re.search(r"BLAS_INFO=([^,\s]+)", shown)
    blas = info.group(1) if info else "unknown"
    libs = [ln.strip(" -") for ln in shown.splitlines()
            if re.search(r"Math Kernel Library|OpenBLAS|MKL-DNN|oneDNN|BLIS", ln)]  # fmt: skip
    version = torch.__version__ + (f", CUDA {torch.version.cuda}" if torch.version.cuda else "")
    return version, "; ".join([blas, *libs])


@functools.lru_cache(maxsize=1)
def _cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo`` on Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo") as fh:
            for ln in fh:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"


def _cuda_in_use() -> bool:
    import torch

    return torch.cuda.is_initialized()


def float32_matmul_precision() -> str | None:
    """torch's float32 matmul precision, or None when its backends disagree (torch >= 2.9
    refuses to say after the legacy ``allow_tf32`` flag changed only one of them)."""
    import torch

    try:
        return torch.get_float32_matmul_precision()
    except RuntimeError:
        return None


def determinism_settings() -> dict[str, object]:
    """torch's settings that decide whether a GPU gives the same bits run to run, now:
    deterministic algorithms (and warn-only), cuDNN deterministic / benchmark, TF32 for matmuls
    and cuDNN, :func:`float32_matmul_precision` and ``CUBLAS_WORKSPACE_CONFIG``."""
    import torch

    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": float32_matmul_precision(),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


def runtime_provenance() -> dict[str, str]:
    """What decides the last bits of a result (docs/reproducibility.md), now, as text:

    - ``lazyphase_torch``: torch's version (and CUDA's, in a CUDA build);
    - ``lazyphase_blas``: the BLAS torch was built with, its library lines (MKL, oneDNN) and,
      once CUDA is in use, ``cuBLAS`` with its version;
    - ``lazyphase_cpu``: machine, processor and ATen's CPU capability (``AVX512``, ``AVX2``:
      which vectorised kernels ran), with any of :data:`KERNEL_ENV` that is set;
    - ``lazyphase_device``: ``cpu``, or the GPU's name once CUDA is in use;
    - ``lazyphase_threads``: JSON, torch's intra- and inter-op threads and :data:`THREAD_ENV`;
    - ``lazyphase_determinism``: JSON, :func:`determinism_settings`.
    """
    import torch

    version, blas = _torch_build()
    cuda = _cuda_in_use()
    if cuda:
        backend = torch.backends.cuda.preferred_blas_library().name  # Cublas or Cublaslt
        blas += f"; {backend} (CUDA {torch.version.cuda})"
    kernels = [f"{k}={os.environ[k]}" for k in KERNEL_ENV if k in os.environ]
    cpu = ", ".join([platform.machine(), _cpu_name(),
                     f"ATen {torch.backends.cpu.get_cpu_capability()}", *kernels])  # fmt: skip
    threads = {"torch_intra_op": torch.get_num_threads(),
               "torch_inter_op": torch.get_num_interop_threads(),
               **{k: os.environ.get(k) for k in THREAD_ENV}}  # fmt: skip
    return {
        "lazyphase_torch": version,
        "lazyphase_blas": blas,
        "lazyphase_cpu": cpu,
        "lazyphase_device": torch.cuda.get_device_name() if cuda else "cpu",
        "lazyphase_threads": json.dumps(threads),
        "lazyphase_determinism": json.dumps(determinism_settings()),
    }
