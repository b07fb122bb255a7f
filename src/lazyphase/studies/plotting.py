"""Plot helpers shared by the studies' figures: file paths, style, facets, labels.

Figures are built on ``matplotlib.figure.Figure`` without pyplot, so no backend, global figure
registry or global style is touched; seaborn gives the style (as a context manager) and palettes.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from lazyphase.store.files import atomic_path

ROW_KEYS = ("scheme", "activation", "depth")
PANEL_W, PANEL_H, MAX_W = 4.2, 3.1, 19.5
DIVERGED = "diverged"
T_LABEL = "t = η·step (continuous time)"
S_LABEL = "s = log κ / log m"
M_LABEL = "width m (neurons per hidden layer)"


def figure_paths(out_pdf: str | Path, out_png: str | Path | None) -> tuple[Path, Path]:
    """``(pdf, png)``; with ``out_png=None`` both derive from the stem ``out_pdf``."""
    out_pdf = Path(out_pdf)
    if out_png is None:
        stem = out_pdf.with_suffix("") if out_pdf.suffix.lower() in (".pdf", ".png") else out_pdf
        return stem.with_name(stem.name + ".pdf"), stem.with_name(stem.name + ".png")
    return out_pdf, Path(out_png)


def suptitle(fig: Figure, text: str, **kw) -> None:
    """A suptitle whose lines are wrapped to the figure's width (about 11 characters per inch)."""
    width = max(int(fig.get_figwidth() * 11), 30)
    lines = [textwrap.fill(line, width) for line in text.split("\n")]
    fig.suptitle("\n".join(lines), **kw)


def save(fig: Figure, out_pdf: str | Path, out_png: str | Path | None) -> None:
    pdf, png = figure_paths(out_pdf, out_png)
    for p in (pdf, png):
        p.parent.mkdir(parents=True, exist_ok=True)
    fig.draw_without_rendering()  # run the constrained layout once, then freeze it for both files
    fig.set_layout_engine("none")
    # drawn in memory, then written under a temporary name and renamed when complete
    # (store/files.py atomic_path): a failing disk leaves nothing under the final names
    for path, kw in ((pdf, {"format": "pdf"}), (png, {"format": "png", "dpi": 150})):
        buf = io.BytesIO()
        fig.savefig(buf, **kw)
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(buf.getvalue())


def plot_style():
    """Seaborn style and context as context managers (rcParams restored afterwards)."""
    from contextlib import ExitStack

    stack = ExitStack()
    stack.enter_context(sns.axes_style("whitegrid"))
    stack.enter_context(sns.plotting_context("paper"))
    return stack


def fmt_num(v: float, digits: int = 2) -> str:
    """A number with a true minus sign; ``n/a`` for NaN."""
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f}".replace("-", "−")


def fmt_s(v: float) -> str:
    """A value of ``s`` as in the legends (``−0.25``)."""
    return f"{v:g}".replace("-", "−")


def norm_key(v: Hashable) -> Hashable:
    """A key value comparable across tables (floats rounded, numpy scalars unwrapped)."""
    if isinstance(v, (float, np.floating)):
        return None if math.isnan(v) else round(float(v), 9)
    if isinstance(v, np.integer):
        return int(v)
    return v


def group_keys(df: pd.DataFrame, cols: Sequence[str]) -> list[tuple]:
    """Distinct ``cols`` tuples of ``df`` (sorted, NaN-safe); ``[()]`` when ``cols`` is empty."""
    cols = [c for c in cols if c in df.columns]
    if not cols:
        return [()] if len(df) else []
    uniq = df[cols].drop_duplicates()
    return sorted((tuple(norm_key(v) for v in r) for r in uniq.itertuples(index=False)), key=str)


def select_rows(df: pd.DataFrame, cols: Sequence[str], key: tuple) -> pd.DataFrame:
    mask = np.ones(len(df), dtype=bool)
    for c, v in zip(cols, key):
        col = df[c]
        if v is None:
            mask &= col.isna().to_numpy()
        elif isinstance(v, float):
            mask &= np.isclose(pd.to_numeric(col, errors="coerce").to_numpy(float), v)
        else:
            mask &= (col.map(norm_key) == v).to_numpy()
    return df[mask]


def present_cols(df: pd.DataFrame, cols: Sequence[str]) -> list[str]:
    return [c for c in cols if c in df.columns]


def group_label(cols: Sequence[str], key: tuple, varying: set[str]) -> str:
    """``lecun, tanh, L=2``: the values of ``cols`` that vary (all if none varies)."""
    parts = []
    for c, v in zip(cols, key):
        if varying and c not in varying:
            continue
        parts.append(f"L={v}" if c == "depth" else f"{c}={v}" if c == "m" else str(v))
    return ", ".join(parts)


def varying_cols(df: pd.DataFrame, cols: Sequence[str]) -> set[str]:
    return {c for c in cols if c in df.columns and df[c].nunique(dropna=False) > 1}


def constant_label(df: pd.DataFrame, cols: Sequence[str]) -> str:
    fixed = [c for c in cols if c in df.columns and df[c].nunique(dropna=False) == 1]
    return group_label(fixed, tuple(df[c].iloc[0] for c in fixed), set())


def layer_order(names) -> list[str]:
    """``W1, W2, …, a`` (weights by index, the output layer last)."""

    def key(name: str):
        name = str(name)
        if name.startswith("W") and name[1:].isdigit():
            return (0, int(name[1:]), name)
        return (1, 0, name)

    return sorted({str(n) for n in names if isinstance(n, str) or pd.notna(n)}, key=key)


def layer_math(name: str) -> str:
    """``W1`` → ``W[1]`` (the papers' notation); ``a`` stays ``a``."""
    return f"W[{name[1:]}]" if name.startswith("W") and name[1:].isdigit() else name


def s_palette(s_values) -> dict:
    vals = sorted({norm_key(v) for v in s_values if pd.notna(v)})
    colors = sns.color_palette("viridis", n_colors=max(len(vals), 1))
    return {v: colors[i] for i, v in enumerate(vals)}


def panel_grid(nrows: int, ncols: int, panel_w: float = PANEL_W, panel_h: float = PANEL_H):
    w = min(panel_w * ncols, MAX_W)
    fig = Figure(figsize=(w, panel_h * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def mark_empty(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def legend_outside(ax) -> None:
    """A small legend, only when something is labelled."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize="x-small", loc="best", framealpha=0.8)


def median_of(v: pd.Series) -> float:
    """Median of the finite values (NaN if none)."""
    a = pd.to_numeric(v, errors="coerce").to_numpy(dtype=float)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else np.nan


def positive_mask(v: pd.Series) -> np.ndarray:
    a = pd.to_numeric(v, errors="coerce").to_numpy(dtype=float)
    return np.isfinite(a) & (a > 0)


def replica_count(df: pd.DataFrame) -> int:
    cols = present_cols(df, ("experiment", "file", "replica", *ROW_KEYS, "s", "m", "seed"))
    return len(df.drop_duplicates(cols)) if cols else len(df)


def tile_edges(v: np.ndarray) -> np.ndarray:
    """Tile edges around the sorted centres ``v`` of a heatmap (midpoints; unit width for one
    value). Shared by the phase diagrams B1 and B2."""
    v = np.asarray(v, dtype=float)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])
