"""Figure B5: the test loss of the network beside three kernel predictors, against width, from
``kernel_baselines.csv`` (:func:`lazyphase.studies.kernels.baselines.baseline_table`).

Panels: for Luo's coordinates at ``γ' = 0`` (scheme ``luo:0``) one per regime of ``γ = 1 − s``
(linear ``γ < 1``, critical ``γ = 1``, condensed ``γ > 1``; several ``s`` of one regime are
told apart by the line style); any other scheme one panel per ``(scheme, s)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from lazyphase.core.schemes import luo_gamma_prime
from lazyphase.studies.plotting import figure_legend, key_line, plotted, suptitle

#: predictor column → (label, colour, marker).
PREDICTOR_STYLE = {
    "test_loss_network": ("(a) network", "k", "o"),
    "test_loss_theta0": ("(b) Θ0 kernel regression f_lin(∞)", "tab:blue", "s"),
    "test_loss_after": ("(c) after kernel Θ_T", "tab:orange", "^"),
    "test_loss_ntk_inf": ("(d) infinite-width NTK Σ w_l K[l]", "tab:green", "D"),
}
_LINESTYLES = ("-", "--", ":", "-.")


def plot_kernel_baselines(baselines, out_pdf: str, out_png=None) -> None:
    plotted(build_kernel_baselines, baselines, out_pdf=out_pdf, out_png=out_png)


def panel_key(scheme: str, s: float) -> str:
    """The panel of a cell: Luo's regime at ``γ' = 0``, else ``scheme, s``."""
    if luo_gamma_prime(scheme) == 0.0:
        gamma = round(1.0 - float(s), 12)
        regime = "critical" if gamma == 1.0 else ("linear" if gamma < 1.0 else "condensed")
        return f"{regime} (γ' = 0)"
    return f"{scheme}, s = {float(s):g}"


def _panels(t: pd.DataFrame) -> pd.DataFrame:
    """The rows drawn (Luo's ``γ' = 0`` only, when the table has it) with their panel."""
    luo0 = t["scheme"].map(luo_gamma_prime) == 0.0
    if luo0.any():
        t = t[luo0]
    elif t["scheme"].map(luo_gamma_prime).notna().any():
        t = t[t["scheme"] == sorted(t["scheme"].unique())[0]]  # B1 without γ' = 0: one γ'
    return t.assign(panel=[panel_key(sc, s) for sc, s in zip(t["scheme"], t["s"])])


def build_kernel_baselines(baselines: pd.DataFrame) -> Figure:
    """Test loss against ``m`` (log–log) per predictor: seeds as points, their median as a
    line; one panel per regime (module docstring). A predictor that is NaN everywhere in a
    panel is left out of it."""
    t = _panels(baselines)
    order = {"linear": 0, "critical": 1, "condensed": 2}
    panels = sorted(t["panel"].unique(), key=lambda p: (order.get(p.split(" ")[0], 3), p))
    fig = Figure(figsize=(4.2 * len(panels) + 0.5, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True, squeeze=False)[0])
    for ax, panel in zip(axes, panels):
        sub = t[t["panel"] == panel]
        for k, s in enumerate(sorted(sub["s"].unique())):
            cell = sub[sub["s"] == s]
            for col, (_label, color, marker) in PREDICTOR_STYLE.items():
                d = cell[np.isfinite(cell[col]) & (cell[col] > 0)]
                if d.empty:
                    continue
                ax.scatter(d["m"], d[col], color=color, marker=marker, s=10, alpha=0.4)
                med = d.groupby("m")[col].median()
                ax.plot(med.index, med.to_numpy(), color=color, marker=marker, ms=4,
                        ls=_LINESTYLES[k % len(_LINESTYLES)], lw=1.2)  # fmt: skip
        title = panel
        if "γ' = 0" in panel:  # a regime panel: name its s (and γ) values
            title += "; s = " + ", ".join(f"{v:g}" for v in sorted(sub["s"].unique()))
        ax.set(xscale="log", yscale="log", title=title,
               xlabel="width m (neurons per hidden layer)")  # fmt: skip
    axes[0].set_ylabel("test loss (1/2) mean (f − y)²")
    handles = [key_line(lab, color=c, marker=mk) for lab, c, mk in PREDICTOR_STYLE.values()]
    figure_legend(fig, handles)
    suptitle(fig, "Kernel baselines beside the network: median over seeds (points: seeds)")
    return fig
