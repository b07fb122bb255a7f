"""Where each figure and table sits in the Snakemake report (``snakemake --report``).

Snakemake's report sorts its categories, subcategories and the entries of a subcategory by
their names (JavaScript ``localeCompare``; entries by their first label, then the next). The
names below make that order the catalog order: the category is the figure's paper family
(``A · theta-lazy``, ``B · phase diagrams``, ``C · Chizat et al.``), the subcategory the
experiment prefixed by the labels it draws in that family (``A1–A6 · theta_lazy``), and an
entry's first label its catalog label (``A1``); an experiment's tables follow its figures.

Every entry carries the labels ``label``, ``title`` and ``file``. Two of them differ between
any two entries, so Snakemake never folds entries into a toggle (it does that to a label with
exactly two values, each on half of the entries, when it is the only such label).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lazyphase.studies.catalog import FIGURES, Figure

#: Paper family (first letter of a catalog label) → its name in the report.
FAMILIES = {"A": "theta-lazy", "B": "phase diagrams", "C": "Chizat et al."}
#: Category of an experiment that draws no figure (sorts after the families).
OTHER = "Z · other results"

#: The CSV tables marked for the report (each by the one rule that writes it): file → title.
TABLES = {
    "exponents.csv": "RD exponent per (scheme, s, layer)",
    "threshold.csv": "threshold s* per layer",
    "function_exponents.csv": "function-distance exponent per (scheme, s)",
    "phase.csv": "regime per grid point",
    "boundary.csv": "phase boundary",
    "condensation.csv": "n_eff per run and stage",
    "concentration_summary.csv": "Gram concentration per width",
    "kernel_baselines.csv": "test loss of the network and three kernel predictors",
    "deep_condensation.csv": "n_eff per hidden layer, init and end",
    "precision.csv": "intervals against the precision target",
}
#: The label a table's entry has in place of a catalog label (sorts after A1 … C8).
TABLE_LABEL = "table"


def family(fig: Figure) -> str:
    """``"A · theta-lazy"``: the report category of a figure."""
    letter = fig.label[0]
    return f"{letter} · {FAMILIES.get(letter, letter)}"


def _labels(exp: Mapping[str, Any]) -> list[Figure]:
    return [f for f in FIGURES.values() if f.name in exp.get("figures", [])]


def section(
    experiments: Mapping[str, Mapping[str, Any]], experiment: str, figure: str | None = None
) -> tuple[str, str]:
    """``(category, subcategory)`` of a figure of ``experiment`` (``figure=None``: of its
    tables, which sit with the experiment's first figure)."""
    figs = _labels(experiments[experiment])
    if figure is not None:
        fam = family(FIGURES[figure])
    elif figs:
        fam = family(figs[0])
    else:
        return OTHER, experiment
    labels = [f.label for f in figs if family(f) == fam]
    span = labels[0] if len(labels) == 1 else f"{labels[0]}–{labels[-1]}"
    return fam, f"{span} · {experiment}"


def figure_labels(fig: Figure) -> dict[str, str]:
    """The report labels of a figure's PNG."""
    return {"label": fig.label, "title": fig.title, "file": f"{fig.name}.png"}


def table_labels(file: str) -> dict[str, str]:
    """The report labels of a table (a key of :data:`TABLES`)."""
    return {"label": TABLE_LABEL, "title": TABLES[file], "file": file}
