"""Plot helpers shared by the studies' figures: file paths, style, facets, labels, legends.

Figures are built on ``matplotlib.figure.Figure`` without pyplot, so no backend, global figure
registry or global style is touched; seaborn gives the style (as a context manager) and palettes.

Every figure follows one pattern: ``build_<name>(*tables, **options) -> Figure`` draws it (and is
what the layout tests inspect), ``plot_<name>(*tables, out_pdf, out_png=None, **options)`` saves
it; the catalog names the ``plot_*`` function.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from lazyphase.store.files import atomic_path

ROW_KEYS = ("scheme", "activation", "depth")
PANEL_W, PANEL_H, MAX_W = 4.2, 3.1, 19.5
DIVERGED = "diverged"
T_LABEL = r"$t = \eta\cdot\mathrm{step}$ (continuous time, log scale)"
S_LABEL = r"$s = \log\kappa\,/\log m$"
M_LABEL = r"width $m$ (neurons per hidden layer)"
#: Markers cycled with the colours of an ordered series (s, γ′): neighbours differ twice.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<", ">")
#: The legends' font size (one place, so all figures agree).
LEGEND_FS = "x-small"


def figure_paths(out_pdf: str | Path, out_png: str | Path | None) -> tuple[Path, Path]:
    """``(pdf, png)``; with ``out_png=None`` both derive from the stem ``out_pdf``."""
    out_pdf = Path(out_pdf)
    if out_png is None:
        stem = out_pdf.with_suffix("") if out_pdf.suffix.lower() in (".pdf", ".png") else out_pdf
        return stem.with_name(stem.name + ".pdf"), stem.with_name(stem.name + ".png")
    return out_pdf, Path(out_png)


def wrap_phrases(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters at phrase boundaries (after
    ``;``, ``,`` or ``:``, never inside ``$…$`` mathtext); a phrase longer than ``width`` stays
    on its own line unbroken, because a break inside it is what made titles unreadable."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        if ch == "$":
            depth ^= 1
        elif ch in ";,:" and depth == 0 and text[k + 1 : k + 2] == " ":
            parts.append(text[start : k + 1])
            start = k + 1
    parts.append(text[start:])
    lines = [""]
    for part in parts:
        if lines[-1] and _visible_len(lines[-1] + part) > width:
            lines.append(part.lstrip())
        else:
            lines[-1] += part
    return "\n".join(line.rstrip() for line in lines)


def _visible_len(text: str) -> int:
    """The length of ``text`` as read: a mathtext command counts as one character, ``$ { } ^ _``
    as none."""
    return len(re.sub(r"[${}^_]", "", re.sub(r"\\[A-Za-z]+", "x", text)))


def suptitle(fig: Figure, text: str, **kw) -> None:
    """A suptitle wrapped to the figure's width (about 11 characters per inch) on phrase
    boundaries (:func:`wrap_phrases`)."""
    width = max(int(fig.get_figwidth() * 11), 30)
    lines = [wrap_phrases(line, width) for line in text.split("\n")]
    kw.setdefault("fontsize", "medium")
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


def plotted(build, *tables, out_pdf, out_png, **kw) -> None:
    """Draw ``build(*tables, **kw)`` in the style and save it (the body of every ``plot_*``)."""
    with plot_style():
        save(build(*tables, **kw), out_pdf, out_png)


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


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt_sci(v: float, digits: int = 2) -> str:
    """A ratio or gap for a reader: ``0.37``, ``12``, ``4.6·10⁶``, ``3.1·10⁻⁴`` (``n/a`` for
    NaN); fixed notation only where it stays short."""
    if v is None or not np.isfinite(v):
        return "n/a"
    if v == 0 or 1e-2 <= abs(v) < 1e3:
        return f"{v:.{digits}g}".replace("-", "−")
    exp = int(np.floor(np.log10(abs(v))))
    mant = v / 10**exp
    return f"{mant:.{digits - 1}f}·10{str(exp).translate(_SUPERSCRIPT)}".replace("-", "−")


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


def layer_tex(name: str) -> str:
    """``W1`` → ``W^{[1]}`` (the papers' notation, mathtext without the ``$``); ``a`` → ``a``."""
    name = str(name)
    return f"W^{{[{name[1:]}]}}" if name.startswith("W") and name[1:].isdigit() else name


def layer_math(name: str) -> str:
    """``W1`` → ``$W^{[1]}$``; ``a`` → ``$a$`` (mathtext)."""
    return f"${layer_tex(name)}$"


def ordered_colors(n: int) -> list:
    """``n`` colours for an ordered series: turbo (blue → green → red), darkened by 15% so its
    yellow middle stays visible on white; neighbours differ in hue (viridis and plasma made
    s = −0.5 and −0.25 look alike)."""
    from matplotlib import colormaps

    cmap = colormaps["turbo"]
    xs = np.linspace(0.05, 0.95, n) if n > 1 else [0.1]
    return [tuple(0.85 * c for c in cmap(x)[:3]) for x in xs]


def s_styles(s_values) -> dict:
    """``{value: {"color", "marker"}}`` of an ordered series: :func:`ordered_colors` and a
    marker per value, so neighbours differ by two cues."""
    vals = sorted({norm_key(v) for v in s_values if pd.notna(v)})
    colors = ordered_colors(len(vals))
    return {v: {"color": colors[i], "marker": MARKERS[i % len(MARKERS)]} for i, v in enumerate(vals)}


def s_palette(s_values) -> dict:
    """``{value: colour}`` of :func:`s_styles`."""
    return {v: st["color"] for v, st in s_styles(s_values).items()}


def panel_grid(nrows: int, ncols: int, panel_w: float = PANEL_W, panel_h: float = PANEL_H):
    w = min(panel_w * ncols, MAX_W)
    fig = Figure(figsize=(w, panel_h * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def legend_right(ax, title: str | None = None, **kw) -> None:
    """The legend of one panel, outside its plotting area on the right (for numbers that differ
    per panel, e.g. fitted slopes); constrained layout makes room for it. Nothing when nothing
    is labelled."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                  borderaxespad=0.0, fontsize=LEGEND_FS, title=title,
                  title_fontsize=LEGEND_FS, **kw)  # fmt: skip


def figure_legend(fig: Figure, handles=None, *, ncol: int | None = None, title=None,
                  loc: str = "outside lower center") -> None:  # fmt: skip
    """One legend for the whole figure outside the axes (below them by default): ``handles``,
    or the labelled artists of every axes, each label once."""
    if handles is None:
        seen: dict[str, object] = {}
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(lab, h)
        handles = [_relabel(h, lab) for lab, h in seen.items()]
    if not handles:
        return
    ncol = ncol or min(len(handles), max(1, int(fig.get_figwidth() // 3.2)))
    fig.legend(handles=handles, loc=loc, ncol=ncol, fontsize=LEGEND_FS, title=title,
               title_fontsize=LEGEND_FS)  # fmt: skip


def _relabel(handle, label: str):
    """A legend proxy of ``handle`` carrying ``label`` (the artist itself keeps its label)."""
    if isinstance(handle, Line2D):
        return Line2D([], [], color=handle.get_color(), ls=handle.get_linestyle(),
                      lw=handle.get_linewidth(), marker=handle.get_marker(),
                      ms=handle.get_markersize(), mfc=handle.get_markerfacecolor(),
                      mec=handle.get_markeredgecolor(), label=label)  # fmt: skip
    handle.set_label(label)
    return handle


def key_line(label: str, **style) -> Line2D:
    """A legend entry for a drawing convention (marker or line style), in grey by default."""
    style.setdefault("color", "0.3")
    style.setdefault("ls", "-" if "marker" not in style else "")
    return Line2D([], [], label=label, **style)


def is_colorbar(ax) -> bool:
    return ax.get_label() == "<colorbar>"


def has_data(ax) -> bool:
    """Whether ``ax`` shows data: lines, collections, images or patches (not the background)."""
    return bool(ax.lines or ax.collections or ax.images or ax.patches)


def drop_empty_axes(fig: Figure, text: str = "no data in the tables") -> Figure:
    """Remove the axes that show nothing (a panel for a combination without data, e.g. W[2]
    at depth 1); a figure left without axes says ``text`` instead. Returns ``fig``."""
    for ax in list(fig.axes):
        if not is_colorbar(ax) and not has_data(ax):
            ax.remove()
    if not fig.axes:
        fig.text(0.5, 0.5, text, ha="center", va="center", color="0.4")
    return fig


def is_dark(rgba) -> bool:
    """Whether a colour is dark enough that text and hatching on it must be white."""
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


def label_tile(ax, x: tuple[float, float], y: tuple[float, float], text: str, *,
               hatched: bool, rgba, fontsize: float = 6.5) -> None:  # fmt: skip
    """One heatmap tile's value (top left, clear of the markers on the tile's centre lines)
    and its hatching, both white on dark tiles and black on light ones (grey hatching vanished
    on dark tiles)."""
    ink = "white" if is_dark(rgba) else "black"
    if hatched:
        ax.add_patch(Rectangle((x[0], y[0]), x[1] - x[0], y[1] - y[0], fill=False, hatch="///",
                               edgecolor=ink, linewidth=0, alpha=0.7))  # fmt: skip
    if text:
        ax.text(x[0] + 0.04 * (x[1] - x[0]), y[1] - 0.06 * (y[1] - y[0]), text, ha="left",
                va="top", fontsize=fontsize, color=ink, zorder=5)  # fmt: skip


def tile_color(cmap, norm: Normalize, v: float):
    """The RGBA a heatmap gives the value ``v`` (white for NaN)."""
    return (1.0, 1.0, 1.0, 1.0) if not np.isfinite(v) else cmap(norm(v))


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
