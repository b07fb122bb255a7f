"""The coordinate-check tables: update sizes per (parameterization, layer, m) and their fitted
slopes against width (:mod:`lazyphase.core.coord_check`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lazyphase.core.coord_check import update_sizes, width_slope
from lazyphase.core.model import layer_names

#: The default call of ``lazyphase coord-check`` (docs/conventions.md §7).
DEFAULT_WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
DEFAULT_PARAMETERIZATIONS = ("sp", "ntp", "mup", "mfp")


def coord_sizes(
    parameterizations: Sequence[str] = DEFAULT_PARAMETERIZATIONS,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    *,
    seeds: Sequence[int] = (0, 1),
    **kw,
) -> pd.DataFrame:
    """One row per (parameterization, layer, m): ``update`` (mean over ``seeds`` of the RMS
    pre-activation update, :func:`~lazyphase.core.coord_check.update_sizes`, whose keyword
    arguments ``kw`` are passed on), ``layer`` (1 … L+1), ``layer_name`` (``W1 … WL, a``: the
    output layer's "pre-activation" is ``f``)."""
    depth = int(kw.get("depth", 2))
    names = layer_names(depth)
    rows = []
    for param in parameterizations:
        for m in widths:
            sizes = np.mean([update_sizes(param, m, seed=s, **kw) for s in seeds], axis=0)
            rows += [dict(parameterization=param, layer=li + 1, layer_name=names[li], m=int(m),
                          update=float(v)) for li, v in enumerate(sizes)]  # fmt: skip
    return pd.DataFrame(rows)


def coord_slopes(sizes: pd.DataFrame) -> pd.DataFrame:
    """Per (parameterization, layer): ``slope`` of ``log update`` against ``log m``, ``spread``
    (update at the largest width / at the smallest) and the widths ``m_min, m_max``."""
    rows = []
    for (param, layer, name), grp in sizes.groupby(
        ["parameterization", "layer", "layer_name"], sort=False
    ):
        slope, spread = width_slope(grp["m"].to_numpy(), grp["update"].to_numpy())
        rows.append(dict(parameterization=param, layer=layer, layer_name=name, slope=slope,
                         spread=spread, m_min=int(grp["m"].min()), m_max=int(grp["m"].max())))  # fmt: skip
    return pd.DataFrame(rows)


def slopes_markdown(slopes: pd.DataFrame) -> str:
    """The slope table as markdown: one row per parameterization, per layer ``slope (spread×)``."""
    names = list(dict.fromkeys(slopes.sort_values("layer")["layer_name"]))
    head = "| parameterization | " + " | ".join(f"`{n}` slope (spread)" for n in names) + " |"
    lines = [head, "|---" * (len(names) + 1) + "|"]
    for param, grp in slopes.groupby("parameterization", sort=False):
        by = grp.set_index("layer_name")
        cells = [f"{by.loc[n, 'slope']:+.2f} ({by.loc[n, 'spread']:.3g}×)" for n in names]
        lines.append(f"| `{param}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
