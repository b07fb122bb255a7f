"""Deprecated import path (one release): use :mod:`lazyphase.pipeline.jobs`."""

from lazyphase.pipeline.jobs import estimate_mem_mb, estimate_runtime_min, train_cells

__all__ = ["estimate_mem_mb", "estimate_runtime_min", "train_cells"]
