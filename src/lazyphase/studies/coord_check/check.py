"""The coordinate check end to end: sizes, slopes, their CSV tables and the figure (the CLI
``lazyphase coord-check`` and the rule ``check_coordinates`` both call it)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from lazyphase.store.files import write_table
from lazyphase.studies.coord_check import analysis as cc
from lazyphase.studies.coord_check.figures import plot_coord_check


def check_coordinates(
    out_dir: str,
    parameterizations: Sequence[str] | None = None,
    widths: Sequence[int] | None = None,
    *,
    seeds: Sequence[int] = (0, 1),
    **kw: Any,
) -> pd.DataFrame:
    """The coordinate check (docs/conventions.md §7): ``coord_check.csv`` (update sizes),
    ``coord_check_slopes.csv`` and ``coord_check.pdf/png`` under ``out_dir``; returns the
    slopes. ``kw``: ``depth, steps, lr, n, d`` of :func:`lazyphase.core.coord_check.update_sizes`
    (defaults: the default call, ``lazyphase coord-check``)."""
    params = parameterizations or cc.DEFAULT_PARAMETERIZATIONS
    sizes = cc.coord_sizes(params, widths or cc.DEFAULT_WIDTHS, seeds=seeds, **kw)
    slopes = cc.coord_slopes(sizes)
    write_table(sizes, os.path.join(out_dir, "coord_check.csv"))
    write_table(slopes, os.path.join(out_dir, "coord_check_slopes.csv"))
    plot_coord_check(sizes, os.path.join(out_dir, "coord_check.pdf"),
                     os.path.join(out_dir, "coord_check.png"), steps=kw.get("steps", 3),
                     lr=kw.get("lr", 1e-4))  # fmt: skip
    return slopes
