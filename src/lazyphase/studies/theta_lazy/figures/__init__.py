"""Figures A1–A6 of the catalog (docs/experiments.md §A) from the aggregated tables, one module
per figure family (``common`` holds what several share); this package re-exports them.

Every ``build_*`` returns the figure, its ``plot_*`` writes a PDF and a PNG (``out_png=None``:
``out_pdf`` is taken as a path stem and ``.pdf``/``.png`` are appended or substituted). Figures
are built on ``matplotlib.figure.Figure`` without pyplot, so no backend, global figure registry
or global style is touched; seaborn gives the style (as a context manager) and the palettes. Panels are facets of
``(scheme, activation, depth)`` × layer (A1, A5) or scheme × ``(activation, depth)`` (A2, A3);
a panel without data is not drawn (the figure keeps its grid, so layers stay in columns), NaN
values are skipped. Numbers that differ per panel (fitted slopes, gaps) are in a legend on the
panel's right; conventions shared by all panels are in one legend below the figure.
"""

from lazyphase.studies.theta_lazy.figures.function_distance import (
    build_function_distance,
    plot_function_distance,
)
from lazyphase.studies.theta_lazy.figures.gram_concentration import (
    build_gram_concentration,
    plot_gram_concentration,
)
from lazyphase.studies.theta_lazy.figures.loss_decay import (
    build_loss_decay,
    loss_gap,
    plot_loss_decay,
)
from lazyphase.studies.theta_lazy.figures.theta_lazy_threshold import (
    build_theta_lazy_threshold,
    plot_theta_lazy_threshold,
)
from lazyphase.studies.theta_lazy.figures.width_scaling import (
    build_gram_drift,
    build_theta_lazy_rd,
    plot_gram_drift,
    plot_theta_lazy_rd,
)

__all__ = [
    "build_function_distance",
    "build_gram_concentration",
    "build_gram_drift",
    "build_loss_decay",
    "build_theta_lazy_rd",
    "build_theta_lazy_threshold",
    "loss_gap",
    "plot_function_distance",
    "plot_gram_concentration",
    "plot_gram_drift",
    "plot_loss_decay",
    "plot_theta_lazy_rd",
    "plot_theta_lazy_threshold",
]
