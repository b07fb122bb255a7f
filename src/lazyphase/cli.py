"""Deprecated import path (one release): use :mod:`lazyphase.pipeline.cli` or ``python -m lazyphase``."""

import sys

from lazyphase.pipeline.cli import build_parser, format_run, main

__all__ = ["build_parser", "format_run", "main"]

if __name__ == "__main__":
    sys.exit(main())
