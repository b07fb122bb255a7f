"""Cell configuration: the JSON schema with defaults, validation and readable errors.

``cell.schema.yaml`` (beside this file) is the single place where a cell parameter, its default
and its allowed values are defined; the pipeline validates every grid cell against it before
any job starts, and the command line does the same for ``CELL.yaml``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import yaml

from . import activations


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key, the value and what is allowed."""


@cache
def cell_schema() -> dict[str, Any]:
    """The cell schema as a dict (read once from the package)."""
    text = resources.files("lazyphase").joinpath("cell.schema.yaml").read_text()
    return yaml.safe_load(text)


def _allowed(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "oneOf" in schema or "description" in schema:
        return schema.get("description", "").strip()
    return str({k: v for k, v in schema.items() if k not in ("description", "default")})


def format_error(err: jsonschema.ValidationError, where: str = "") -> str:
    """One line naming the key path, the bad value and what the schema allows."""
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        key = ".".join(filter(None, [path, extra[0] if extra else ""]))
        return f"{where}unknown key {key!r}; allowed keys: {allowed}"
    if err.validator == "required":
        return f"{where}{err.message} (at {path or 'top level'})"
    prop = err.schema
    if err.validator == "oneOf" or len(err.relative_schema_path) > 1:
        # report against the property's own schema when the failure is nested in it
        prop = _property_schema(err) or prop
    return (
        f"{where}invalid value {err.instance!r} for key {path!r}: {err.message}. "
        f"Allowed: {_allowed(prop)}"
    )


def _property_schema(err: jsonschema.ValidationError) -> Mapping[str, Any] | None:
    schema: Any = err.parent.schema if err.parent is not None else None
    if schema is None:
        path = list(err.absolute_path)
        schema = cell_schema()
        for p in path:
            if isinstance(p, str) and "properties" in schema and p in schema["properties"]:
                schema = schema["properties"][p]
            else:
                return None
    return schema


_VALIDATOR = None


def _validator() -> jsonschema.Draft202012Validator:
    global _VALIDATOR
    if _VALIDATOR is None:
        _VALIDATOR = jsonschema.Draft202012Validator(cell_schema())
    return _VALIDATOR


def validate_cell(cell: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Validate one cell, fill the defaults and check the cross-field rules.

    Args:
        cell: user-given parameters (any subset of the schema's keys; ``m`` is required).
        where: prefix for error messages (e.g. the experiment and cell name).

    Returns:
        A new dict with every schema key present.

    Raises:
        ConfigError: naming the key, the value and the allowed values.
    """
    cfg = {k: (v.item() if hasattr(v, "item") else v) for k, v in dict(cell).items()}
    errors = sorted(_validator().iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(format_error(errors[0], where))
    out: dict[str, Any] = {}
    for key, sub in cell_schema()["properties"].items():
        out[key] = copy.deepcopy(cfg[key]) if key in cfg else copy.deepcopy(sub.get("default"))
    _check_rules(out, where)
    return out


def _check_rules(cfg: dict[str, Any], where: str) -> None:
    if cfg["activation"] not in activations.names():
        raise ConfigError(
            f"{where}invalid value {cfg['activation']!r} for key 'activation'. "
            f"Allowed: one of {', '.join(activations.names())}"
        )
    if cfg["centering"] == "symmetric" and cfg["m"] % 2:
        raise ConfigError(
            f"{where}invalid value {cfg['m']!r} for key 'm': centering 'symmetric' duplicates "
            "neurons, so m must be even"
        )
    scheme = cfg["scheme"]
    if isinstance(scheme, str) and scheme.startswith("luo:") and cfg["depth"] != 1:
        raise ConfigError(
            f"{where}invalid value {cfg['depth']!r} for key 'depth': scheme {scheme!r} "
            "(Luo et al. coordinates) is defined for depth 1 only"
        )
    if isinstance(scheme, Mapping):
        for key in ("c", "gamma"):
            if len(scheme[key]) not in (cfg["depth"], cfg["depth"] + 1):
                raise ConfigError(
                    f"{where}invalid value {scheme[key]!r} for key 'scheme.{key}': needs depth "
                    f"(= {cfg['depth']}) or depth + 1 entries"
                )
    _check_chizat(cfg, where)
    if len(set(cfg["seeds"])) != len(cfg["seeds"]):
        raise ConfigError(f"{where}invalid value {cfg['seeds']!r} for key 'seeds': seeds repeat")


def _check_chizat(cfg: dict[str, Any], where: str) -> None:
    """Cross-field rules of the Chizat model family (``model: chizat``)."""
    if cfg["model"] == "chizat":
        for key, need in (("depth", 1), ("bias", False), ("objective_scale", 1.0)):
            if cfg[key] != need:
                raise ConfigError(
                    f"{where}invalid value {cfg[key]!r} for key {key!r}: model 'chizat' "
                    f"(f = A sum_j a_j relu(b_j.x)) needs {key} = {need!r}"
                    + (" (use step_on)" if key == "objective_scale" else "")
                )
        if cfg["activation"] != "relu":
            raise ConfigError(
                f"{where}invalid value {cfg['activation']!r} for key 'activation': model "
                "'chizat' is the ReLU network of Chizat et al.; use activation: relu"
            )
        return
    for key, value, default in (
        ("lr_policy", cfg["lr_policy"], None),
        ("init", cfg["init"], "gaussian"),
        ("step_on", cfg["step_on"], "F_alpha"),
    ):
        if (key == "lr_policy" and value == "chizat_alpha") or (default and value != default):
            raise ConfigError(
                f"{where}invalid value {value!r} for key {key!r}: only defined for model "
                "'chizat' (set model: chizat)"
            )


def load_cell(path: str) -> dict[str, Any]:
    """Read ``CELL.yaml`` and validate it (errors name the file)."""
    with open(path) as fh:
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{path}: a cell file holds a mapping of parameters, got {type(raw).__name__}"
        )
    return validate_cell(raw, where=f"{path}: ")


def scheme_label(scheme: str | Mapping[str, Any]) -> str:
    """A printable, file-name-safe label of a scheme (explicit vectors as c=..;gamma=..)."""
    if isinstance(scheme, str):
        return scheme
    c = ",".join(f"{v:g}" for v in scheme["c"])
    g = ",".join(f"{v:g}" for v in scheme["gamma"])
    return f"c={c};gamma={g}"


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
    """Validate a workflow configuration (the same checks as the Snakefile), fill its defaults
    and expand every experiment into validated cells.

    Returns the filled configuration. Raises :class:`ConfigError` naming the key, the value and
    what is allowed.
    """
    from .grid import expand_config  # grid imports this module

    cfg = copy.deepcopy(dict(config))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = ".".join(str(p) for p in err.absolute_path) or "top level"
        if err.validator == "additionalProperties":
            raise ConfigError(format_error(err))
        allowed = _allowed(err.schema) if isinstance(err.schema, Mapping) else ""
        raise ConfigError(
            f"invalid value {err.instance!r} for key {path!r}: {err.message}"
            + (f". Allowed: {allowed}" if allowed else "")
        )
    _fill_defaults(cfg, schema)
    expand_config(cfg)
    return cfg
