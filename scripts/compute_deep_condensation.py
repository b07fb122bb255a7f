"""Snakemake shim of rule compute_deep_condensation."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.steps import compute_deep_condensation  # noqa: E402

compute_deep_condensation(sm.params.paths, dict(sm.output.items()))
