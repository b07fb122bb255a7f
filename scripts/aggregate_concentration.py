"""Snakemake shim of rule aggregate_concentration."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.steps import aggregate_concentration  # noqa: E402

aggregate_concentration(
    list(sm.input), dict(sm.output.items()), n_boot=sm.params.n_boot, ci=sm.params.ci
)
