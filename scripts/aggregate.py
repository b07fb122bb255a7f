"""Snakemake shim of rule aggregate_experiment."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.steps import aggregate_experiment  # noqa: E402

aggregate_experiment(
    sm.params.paths,
    sm.wildcards.experiment,
    dict(sm.output.items()),
    n_boot=sm.params.n_boot,
    ci=sm.params.ci,
)
