"""Helpers shared by the A figures: the scheme × (activation, depth) facets, the diverged
replicas, the geometric mean over seeds, exponent error bars and the crossing ``s*`` band."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from lazyphase.studies.plotting import (
    DIVERGED,
    group_keys,
    group_label,
    present_cols,
    replica_count,
    select_rows,
)


def facet_title(rcols, rkey: tuple, ccols, ckey: tuple) -> str:
    """``row values, column values`` of a panel (the empty parts left out)."""
    parts = (group_label(rcols, rkey, set()), group_label(ccols, ckey, set()))
    return ", ".join(x for x in parts if x)


class SchemeByArch:
    """The facets of A2, A3 and A6: rows = scheme, columns = (activation, depth), the keys
    present in ``df`` (one facet ``()`` when a key column is missing)."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.rcols = present_cols(df, ("scheme",))
        self.ccols = present_cols(df, ("activation", "depth"))
        self.rows = group_keys(df, self.rcols) or [()]
        self.cols = group_keys(df, self.ccols) or [()]

    def panels(self, df: pd.DataFrame) -> Iterator[tuple[int, int, pd.DataFrame, str, dict]]:
        """``(i, j, sub, title, ctx)`` per facet in row-major order: the rows ``sub`` of
        ``df`` in facet ``(i, j)``, its :func:`facet_title` and ``ctx = {key column: value}``."""
        for i, rkey in enumerate(self.rows):
            for j, ckey in enumerate(self.cols):
                sub = select_rows(select_rows(df, self.rcols, rkey), self.ccols, ckey)
                title = facet_title(self.rcols, rkey, self.ccols, ckey)
                yield i, j, sub, title, dict(zip([*self.rcols, *self.ccols], (*rkey, *ckey)))


def diverged_mask(df: pd.DataFrame) -> pd.Series:
    """Whether each row is a diverged replica (all ``False`` without a ``status`` column)."""
    if "status" in df.columns:
        return df["status"] == DIVERGED
    return pd.Series(False, index=df.index)


def diverged_split(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``(kept, n_div)``: the rows of ``df`` that did not diverge and the number of diverged
    replicas (:func:`~lazyphase.studies.plotting.replica_count`)."""
    bad = diverged_mask(df)
    n_div = replica_count(df[bad]) if bad.any() else 0
    return df[~bad], n_div


def seed_geomean(d: pd.DataFrame, ycol: str) -> pd.Series:
    """Geometric mean of the (positive) ``ycol`` over the seeds, per ``m`` (index ``m``)."""
    return np.exp(np.log(d[ycol].astype(float)).groupby(d["m"]).mean())


def exponent_errorbars(ax, d: pd.DataFrame, *, dx: float = 0.0, **style) -> None:
    """Fitted exponents ``d['slope']`` against ``s`` (shifted by ``dx``) with the bootstrap
    interval ``[ci_low, ci_high]`` as error bars; NaN slopes are skipped. ``style``: ``lw``,
    ``color``, ``label``."""
    y = d["slope"].to_numpy(float)
    lo = np.clip(y - d["ci_low"].to_numpy(float), 0, None)
    hi = np.clip(d["ci_high"].to_numpy(float) - y, 0, None)
    yerr = np.nan_to_num(np.vstack([lo, hi]), nan=0.0)
    ok = np.isfinite(y)
    if ok.any():
        ax.errorbar(d["s"].to_numpy(float)[ok] + dx, y[ok], yerr=yerr[:, ok], marker="o",
                    ms=3.5, capsize=2.5, **style)  # fmt: skip


def crossing_band(ax, star: float, lo: float, hi: float, *, color, label: str, **line) -> None:
    """A crossing ``s*`` as a vertical line (labelled; ``line``: e.g. ``ls``) over its interval
    ``[lo, hi]`` as a faint band (no band when an end is not finite)."""
    if np.isfinite(lo) and np.isfinite(hi):
        ax.axvspan(lo, hi, color=color, alpha=0.15, lw=0)
    ax.axvline(star, color=color, lw=1.4, label=label, **line)
