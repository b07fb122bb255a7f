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
        default = sub.get("default", "required" if key == "m" else "")
        desc = " ".join(str(sub.get("description", "")).split())
        rows.append(f"| `{key}` | {kind} | `{default}` | {desc} |")
    return rows


def reference_markdown(workflow_schema: Mapping[str, Any]) -> str:
    """The configuration reference (docs/configuration.md), generated from both schemas."""
    exp = workflow_schema["properties"]["experiments"]["additionalProperties"]
    lines = [
        "# Configuration reference",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` and `src/lazyphase/cell.schema.yaml`",
        "by `lazyphase config-reference`; a test keeps this file in sync.",
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
