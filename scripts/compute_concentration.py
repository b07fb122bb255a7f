"""Snakemake shim of rule compute_gram_concentration."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.steps import compute_concentration  # noqa: E402

compute_concentration(sm.params.cells, sm.output[0], threads=sm.threads)
