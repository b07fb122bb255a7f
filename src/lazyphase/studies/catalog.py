"""The figure catalog: every figure's name, label, study, experiment kinds, input tables and
drawing function. The configuration check, the plot dispatch and the Snakemake plot rules are
all generated from :data:`FIGURES` (docs/experiments.md lists the same figures for readers).

Imports no matplotlib: the drawing module is imported only when a figure is drawn.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

#: Tables of an experiment's results folder, by the role a figure reads them under.
TABLES = {
    "runs": "runs.parquet",
    "traj": "trajectory.parquet",
    "exponents": "exponents.csv",
    "threshold": "threshold.csv",
    "fexponents": "function_exponents.csv",
    "table": "concentration.parquet",
    "summary": "concentration_summary.csv",
    "phase": "phase.csv",
    "boundary": "boundary.csv",
    "grid": "landscape.parquet",
    "points": "landscape_points.parquet",
    "cover": "cover.parquet",
    "teacher": "cover_teacher.parquet",
    "neurons": "neurons.parquet",
    "circle": "circle.parquet",
    "condensation": "condensation.csv",
    "baselines": "kernel_baselines.csv",
    "deep_condensation": "deep_condensation.csv",
    "precision": "precision.csv",
}


@dataclass(frozen=True)
class Figure:
    """One entry of the catalog.

    Attributes:
        name: the figure's name in ``figures:`` of the configuration and in file names.
        label: the catalog label (``A1`` … ``C8``, docs/experiments.md).
        title: a short title for the report.
        kinds: the experiment kinds that can build it.
        inputs: the roles of :data:`TABLES` the drawing function takes, in its argument order.
        draw: ``"module:function"`` under ``lazyphase.studies``; called as
            ``function(*tables, out_pdf, out_png)``. Its module also defines the ``build_*``
            twin (``plot_x`` → ``build_x``) that returns the figure (:meth:`builder`).
    """

    name: str
    label: str
    title: str
    kinds: tuple[str, ...]
    inputs: tuple[str, ...]
    draw: str
    study: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "study", self.draw.split(".", 1)[0])

    def input_paths(self, folder: str) -> dict[str, str]:
        """``{role: folder/<table file>}`` of the inputs."""
        return {role: f"{folder}/{TABLES[role]}" for role in self.inputs}

    def function(self) -> Callable[..., None]:
        """The drawing function (imports its module)."""
        module, func = self.draw.split(":")
        return getattr(importlib.import_module(f"lazyphase.studies.{module}"), func)

    def builder(self) -> Callable[..., object]:
        """The ``build_*`` twin of the drawing function: ``builder()(*tables)`` returns the
        matplotlib ``Figure`` without saving it (the layout tests inspect it)."""
        module, func = self.draw.split(":")
        name = "build_" + func.removeprefix("plot_")
        return getattr(importlib.import_module(f"lazyphase.studies.{module}"), name)


_A = "theta_lazy.figures"
_C = "chizat.figures"
_TRAIN = ("train",)
_FIGURES = (
    Figure("theta_lazy_rd", "A1", "RD against width", ("train", "phase_diagram"),
           ("runs", "exponents"), f"{_A}:plot_theta_lazy_rd"),
    Figure("theta_lazy_threshold", "A2", "RD exponents against s", _TRAIN,
           ("exponents", "threshold"), f"{_A}:plot_theta_lazy_threshold"),
    Figure("loss_decay", "A3", "Loss decay", ("train", "phase_diagram"),
           ("traj",), f"{_A}:plot_loss_decay"),
    Figure("gram_concentration", "A4", "Gram concentration at initialization",
           ("gram_concentration",), ("table", "summary"), f"{_A}:plot_gram_concentration"),
    Figure("gram_drift", "A5", "Gram drift", _TRAIN, ("runs",), f"{_A}:plot_gram_drift"),
    Figure("function_distance", "A6", "Function-space distance to the kernel predictor", _TRAIN,
           ("runs", "fexponents", "threshold"), f"{_A}:plot_function_distance"),
    Figure("phase_diagram", "B1", "Phase diagram (Luo et al.)", ("phase_diagram",),
           ("phase", "boundary"), "phase.figures:plot_phase_diagram"),
    Figure("deep_phase_diagram", "B2", "Deep phase diagram, every layer", ("deep_phase_diagram",),
           ("phase", "boundary"), "deep_phase.figures:plot_deep_phase_diagram"),
    Figure("condensation", "B3", "Condensation: neurons at init and end (Luo et al.)", _TRAIN,
           ("neurons", "circle", "condensation"), "phase.figures:plot_condensation"),
    Figure("function_phase_diagram", "B4", "Where the network leaves its kernel",
           ("phase_diagram", "deep_phase_diagram"), ("phase", "boundary"),
           "phase.function_figures:plot_function_phase_diagram"),
    Figure("kernel_baselines", "B5", "Kernel baselines beside the network",
           ("train", "phase_diagram", "deep_phase_diagram"), ("baselines",),
           "kernels.figures:plot_kernel_baselines"),
    Figure("deep_condensation", "B6", "Condensation at depth", ("deep_phase_diagram",),
           ("deep_condensation",), "deep_phase.figures:plot_deep_condensation"),
    Figure("chizat_tau", "C1", "Test loss against τ", _TRAIN, ("runs",), f"{_C}:plot_chizat_tau"),
    Figure("chizat_width", "C2", "Test loss against width", _TRAIN, ("runs",),
           f"{_C}:plot_width"),
    Figure("chizat_population", "C3", "Population SGD", _TRAIN, ("runs",),
           f"{_C}:plot_population"),
    Figure("chizat_cover", "C4", "Neuron paths (cover)", _TRAIN, ("cover", "teacher"),
           f"{_C}:plot_cover"),
    Figure("chizat_trajectories", "C5", "Parameter trajectories", _TRAIN, ("traj",),
           f"{_C}:plot_trajectories"),
    Figure("chizat_alpha_tau", "C6", "Test loss over (A, τ)", _TRAIN, ("runs",),
           f"{_C}:plot_alpha_tau"),
    Figure("chizat_stepsize", "C7", "Step-size rules against τ", _TRAIN, ("runs",),
           f"{_C}:plot_stepsize"),
    Figure("chizat_landscape", "C8", "Loss landscape", _TRAIN, ("grid", "points"),
           f"{_C}:plot_landscape"),
    Figure("lr_phase_portrait", "D1", "Learning-rate phase portrait (γ0, η/η_crit)", _TRAIN,
           ("runs",), "lr_phase.figures:plot_lr_phase_portrait"),
)  # fmt: skip

#: name → :class:`Figure`, in catalog order (A1 … C8).
FIGURES: Mapping[str, Figure] = {
    f.name: f for f in sorted(_FIGURES, key=lambda f: (f.label[0], int(f.label[1:])))
}


def kind_figures(kind: str) -> list[str]:
    """The names of the figures an experiment of ``kind`` can build, in catalog order."""
    return [f.name for f in FIGURES.values() if kind in f.kinds]
