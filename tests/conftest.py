"""Shared helpers for the tests."""

from __future__ import annotations

import pytest

from lazyphase.cells import validate_cell


@pytest.fixture
def cell():
    """A factory of validated cells: ``cell(m=64, depth=2, ...)``."""

    def make(**kw):
        kw.setdefault("m", 16)
        return validate_cell(kw)

    return make


def dataset_bytes(path) -> dict[str, bytes]:
    """Every dataset of an HDF5 file as raw bytes (for bit-for-bit comparisons)."""
    import h5py

    out: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()].tobytes()) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return out


def pytest_configure(config):
    """One torch thread: the tests are small, and two pytest-spawned workloads sharing two cores
    with OpenMP spin-waiting would make them slow, not faster."""
    import torch

    torch.set_num_threads(1)
