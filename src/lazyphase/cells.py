"""Cell configuration: the JSON schema with defaults, validation and readable errors.

``cell.schema.yaml`` (beside this file) is the single place where a cell parameter, its default
and its allowed values are defined; the pipeline validates every grid cell against it before
any job starts, and the command line does the same for ``CELL.yaml``.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import yaml

from lazyphase.core import activations
from lazyphase.core.schemes import luo_gamma_prime


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key, the value and what is allowed.

    ``problems`` lists every problem found (validation reports all of them at once)."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        items = [problems] if isinstance(problems, str) else problems
        self.problems = [line for item in items for line in str(item).split("\n")]
        super().__init__(join_errors(self.problems))


@cache
def cell_schema() -> dict[str, Any]:
    """The cell schema as a dict (read once from the package)."""
    text = resources.files("lazyphase").joinpath("cell.schema.yaml").read_text()
    return yaml.safe_load(text)


def allowed_text(schema: Mapping[str, Any]) -> str:
    """What a (leaf) schema allows, in words; empty for objects (their keys are listed apart)."""
    if schema.get("type") == "object" or "properties" in schema:
        return ""
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "oneOf" in schema or "description" in schema:
        return schema.get("description", "").strip()
    return str({k: v for k, v in schema.items() if k not in ("description", "default")})


def format_error(err: jsonschema.ValidationError, where: str = "") -> str:
    """One line naming the key path, the bad value and what the schema allows."""
    path = ".".join(str(p) for p in err.absolute_path)
    if err.validator == "additionalProperties":
        known = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(known))
        return "\n".join(
            f"{where}unknown key {'.'.join(filter(None, [path, key]))!r}"
            + (did_you_mean(key, known) or f"; allowed keys: {', '.join(known)}")
            for key in extra
        )
    if err.validator == "required":
        return f"{where}{err.message} (at {path or 'top level'})"
    prop = err.schema
    if err.validator == "oneOf" or len(err.relative_schema_path) > 1:
        # report against the property's own schema when the failure is nested in it
        prop = _property_schema(err) or prop
    allowed = allowed_text(prop)
    return f"{where}invalid value {err.instance!r} for key {path!r}: {err.message}" + (
        f". Allowed: {allowed}" if allowed else ""
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``choices`` to a misspelt ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def join_errors(messages: Sequence[str]) -> str:
    """One message for one problem; a numbered list for several (all are reported at once)."""
    if len(messages) == 1:
        return messages[0]
    return f"{len(messages)} problems:\n" + "\n".join(f"  {i}. {m}" for i, m in enumerate(messages, 1))


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
        raise ConfigError([format_error(e, where) for e in errors])
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
    if luo_gamma_prime(scheme) is not None and cfg["depth"] != 1:
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
    _check_parameterization(cfg, where)
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
        ("delta_on", cfg["delta_on"], "R"),
    ):
        if (key == "lr_policy" and value == "chizat_alpha") or (default and value != default):
            raise ConfigError(
                f"{where}invalid value {value!r} for key {key!r}: only defined for model "
                "'chizat' (set model: chizat)"
            )


def _check_parameterization(cfg: dict[str, Any], where: str) -> None:
    """An explicit parameterization has ``depth + 1`` entries per vector; none with model chizat
    or a scheme other than the default (the parameterization sets every layer's std)."""
    spec = cfg["parameterization"]
    if spec is None:
        return
    for key in ("model", "scheme", "kappa_via"):
        default = cell_schema()["properties"][key]["default"]
        if cfg[key] != default:
            raise ConfigError(
                f"{where}invalid value {cfg[key]!r} for key {key!r}: the parameterization "
                f"{spec!r} sets every layer's std; leave {key} at its default {default!r}"
            )
    if isinstance(spec, Mapping):
        vectors = {k: spec[k] for k in ("a", "b", "c")}
        vectors |= {f"constants.{k}": v for k, v in (spec.get("constants") or {}).items()}
        for key, vec in vectors.items():
            if len(vec) != cfg["depth"] + 1:
                raise ConfigError(
                    f"{where}invalid value {vec!r} for key 'parameterization.{key}': needs "
                    f"depth + 1 (= {cfg['depth'] + 1}) entries, one per layer W1..WL, a"
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
