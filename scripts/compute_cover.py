"""Snakemake shim of rule compute_cover (C4)."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.chizat import cover_table  # noqa: E402

cover_table(sm.params.paths, sm.output.cover, sm.output.teacher)
