"""Send a Snakemake job's logging and stderr to its log file (shared by the script shims)."""

import logging
import sys


def to_log(path: str) -> None:
    handle = open(path, "w", buffering=1)
    sys.stderr = handle
    logging.basicConfig(
        stream=handle, level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True
    )
