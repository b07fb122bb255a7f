"""Snakemake shim of the plot_<figure> rules."""

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.pipeline.steps import plot  # noqa: E402

plot(sm.params.figure, dict(sm.input.items()), sm.output.pdf, sm.output.png)
