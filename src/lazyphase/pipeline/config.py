"""Workflow configuration: validation of ``config.yaml`` against the workflow schema, its
defaults, and the generated configuration reference (``docs/configuration.md``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema
import pandas as pd

from lazyphase.cells import ConfigError, cell_schema, format_error
from lazyphase.pipeline.grid import expand_config


def _schema_rows(props: Mapping[str, Any]) -> list[str]:
    rows = []
    for key, sub in props.items():
        kind = sub.get("type", "enum" if "enum" in sub else "see text")
        if "enum" in sub:
            kind = " \\| ".join(f"`{v}`" for v in sub["enum"])
        elif isinstance(kind, list):
            kind = " or ".join(kind)
        default = sub.get("default", "required" if key == "m" else None)
        shown = "" if default is None else f"`{default}`"  # an empty `` would open a code span
        desc = " ".join(str(sub.get("description", "")).split())
        rows.append(f"| `{key}` | {kind} | {shown} | {desc} |")
    return rows


def reference_markdown(workflow_schema: Mapping[str, Any]) -> str:
    """The configuration reference (docs/configuration.md), generated from both schemas."""
    top = workflow_schema["properties"]
    exp = top["experiments"]["additionalProperties"]
    lines = [
        "# Configuration reference",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` and `src/lazyphase/cell.schema.yaml`",
        "by `lazyphase config-reference`; a test keeps this file in sync.",
        "",
        "## Top level (`config.yaml`)",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
        *_schema_rows(top),
        "",
        "## Job budget (`budget: {…}`)",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
        *_schema_rows(top["budget"]["properties"]),
        "",
        "## Experiments (`config.yaml`: `experiments: {<name>: …}`)",
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
        *_schema_rows(exp["properties"]),
        "",
        "## Cell parameters (keys of `grid` and `fixed`, and of `CELL.yaml`)",
        "",
        " ".join(str(cell_schema()["description"]).split()),
        "",
        "| key | type | default | meaning |",
        "|---|---|---|---|",
        *_schema_rows(cell_schema()["properties"]),
        "",
    ]
    return "\n".join(lines)


def _fill_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """Fill ``default`` values of object properties (and of ``additionalProperties`` entries)."""
    if not isinstance(value, dict):
        return value
    props = schema.get("properties", {})
    for key, sub in props.items():
        if key not in value and "default" in sub:
            value[key] = copy.deepcopy(sub["default"])
        if key in value:
            value[key] = _fill_defaults(value[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        for key in value:
            if key not in props:
                value[key] = _fill_defaults(value[key], extra)
    return value


def validate_config(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a workflow configuration (the same checks as the Snakefile) and fill its
    defaults; every experiment is expanded into validated cells on the way.

    Returns the filled configuration. Raises :class:`ConfigError` naming the key, the value and
    what is allowed.
    """
    return validated_grid(config, schema)[0]


def validated_grid(
    config: Mapping[str, Any], schema: Mapping[str, Any]
) -> tuple[dict[str, Any], pd.DataFrame]:
    """:func:`validate_config` and the grid it expands to (:func:`expand_config`'s frame)."""
    cfg = copy.deepcopy(dict(config))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError([format_error(e) for e in errors])
    _fill_defaults(cfg, schema)
    # expand each experiment on its own, so that every broken experiment is reported at once
    frames, problems = [], []
    for name, exp in cfg["experiments"].items():
        try:
            frames.append(expand_config({**cfg, "experiments": {name: exp}}))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return cfg, pd.concat(frames, ignore_index=True)


#: Fewer seeds than this draw a warning: the seed bootstrap undercovers (docs/statistics.md).
WARN_SEEDS = 5
#: Figures that fit exponents against log m, and those that locate s* along s.
_WIDTH_FIGURES = {"theta_lazy_rd", "theta_lazy_threshold", "gram_drift", "function_distance",
                  "phase_diagram", "gram_concentration"}  # fmt: skip
_S_FIGURES = {"theta_lazy_threshold", "function_distance"}


def grid_warnings(cells: pd.DataFrame, config: Mapping[str, Any]) -> list[str]:
    """Warnings about grids too small for the figures they request: fewer than 3 widths for an
    exponent fit (2 give a slope without an interval, 1 none at all), fewer than 3 values of
    ``s`` for a threshold, fewer than :data:`WARN_SEEDS` seeds for the seed bootstrap."""
    out = []
    for name, frame in cells.groupby("experiment", sort=False):
        figures = set(config["experiments"][name].get("figures", []))
        params = list(frame["params"])
        widths = {p["m"] for p in params}
        s_values = {p.get("s") for p in params}
        seeds = min(len(p["seeds"]) for p in params)
        where = f"experiments.{name}"
        if figures & _WIDTH_FIGURES and len(widths) < 3:
            out.append(f"{where}: {len(widths)} width(s) {sorted(widths)}; the exponent fits of "
                       f"{sorted(figures & _WIDTH_FIGURES)} need at least 3 (1 gives none)")  # fmt: skip
        if figures & _S_FIGURES and len(s_values) < 3:
            out.append(f"{where}: {len(s_values)} value(s) of s; the threshold s* of "
                       f"{sorted(figures & _S_FIGURES)} needs at least 3")  # fmt: skip
        if figures & (_WIDTH_FIGURES | {"chizat_alpha_tau"}) and seeds < WARN_SEEDS:
            out.append(f"{where}: {seeds} seed(s); the seed-bootstrap intervals need at least "
                       f"{WARN_SEEDS} to mean much (fewer than 3: no interval at all)")  # fmt: skip
    return out
