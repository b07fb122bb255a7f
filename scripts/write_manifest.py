"""Snakemake shim of rule write_manifest."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.steps import write_manifest  # noqa: E402

write_manifest(list(sm.input), sm.output[0], code=sm.params.code)
