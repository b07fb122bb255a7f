"""Snakemake shim of rule make_dataset."""

import sys

from _log import to_log

sm = snakemake  # noqa: F821
to_log(sm.log[0])  # before importing the package, so import errors reach the log

from lazyphase.store.runs import write_datasets  # noqa: E402

keys = write_datasets(sm.output[0], sm.params.cells)
print(f"wrote {len(keys)} data sets for {len(sm.params.cells)} cells", file=sys.stderr)
