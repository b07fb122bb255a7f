"""Snakemake shim of rule compute_landscape (C8)."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.jobs import set_threads  # noqa: E402

set_threads(sm.threads)

from lazyphase.pipeline.steps import compute_landscape  # noqa: E402

compute_landscape(sm.params.paths, dict(sm.output.items()))
