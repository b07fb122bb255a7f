"""Snakemake shim of rule check_coordinates."""

import os

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.steps import check_coordinates  # noqa: E402

check_coordinates(os.path.dirname(sm.output.slopes))
