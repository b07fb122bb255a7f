"""Deprecated import path (one release): use :mod:`lazyphase.cells` and
:mod:`lazyphase.pipeline.config`."""

from lazyphase.cells import ConfigError, load_cell, validate_cell
from lazyphase.core.schemes import scheme_label
from lazyphase.pipeline.config import reference_markdown, validate_config

__all__ = [
    "ConfigError",
    "load_cell",
    "reference_markdown",
    "scheme_label",
    "validate_cell",
    "validate_config",
]
