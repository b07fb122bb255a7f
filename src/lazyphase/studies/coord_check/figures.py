"""The coordinate-check figure: per parameterization a panel of the RMS pre-activation update
of every layer against width (log-log), the fitted slope of each layer in the legend."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from lazyphase.studies.coord_check.analysis import coord_slopes
from lazyphase.studies.plotting import layer_math, plotted, suptitle


def plot_coord_check(sizes, out_pdf: str, out_png: str | None = None, **kw) -> None:
    plotted(build_coord_check, sizes, out_pdf=out_pdf, out_png=out_png, **kw)


def build_coord_check(
    sizes: pd.DataFrame, *, steps: int | None = None, lr: float | None = None
) -> Figure:
    """One panel per parameterization (shared y axis): update size against ``m`` per layer."""
    params = list(dict.fromkeys(sizes["parameterization"]))
    slopes = coord_slopes(sizes).set_index(["parameterization", "layer_name"])["slope"]
    fig = Figure(figsize=(3.6 * len(params) + 1.6, 3.4), layout="constrained")
    axes = fig.subplots(1, len(params), sharey=True, squeeze=False)[0]
    for ax, param in zip(axes, params):
        sub = sizes[sizes["parameterization"] == param]
        for k, (name, grp) in enumerate(sub.groupby("layer_name", sort=False)):
            what = "f" if k == sub["layer"].max() - 1 else f"z_{k + 1}"
            ax.plot(grp["m"], grp["update"], "o-", color=f"C{k}",
                    label=f"{layer_math(name)} (${what}$): slope {slopes[(param, name)]:+.2f}")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width m")
        ax.set_title(param)
        ax.legend(fontsize=6, loc="best")
    axes[0].set_ylabel("RMS pre-activation update")
    after = f" after {steps} steps" if steps else ""
    base = f" η = {lr:g}" if lr else ""
    suptitle(fig, f"Coordinate check{after}: width-independent base step{base}, layer l steps η r_l")
    return fig
