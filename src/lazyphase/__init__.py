"""lazyphase: when is neural-network training lazy? Width, initial output scale and scheme.

Layers (docs/architecture.md): :mod:`lazyphase.core` (numerics), :mod:`lazyphase.cells` (the cell
schema), :mod:`lazyphase.store` (files) and :mod:`lazyphase.stats`, :mod:`lazyphase.studies`
(A theta-lazy, B phase diagram, C Chizat), :mod:`lazyphase.pipeline` (workflow glue and CLI).
"""

import os

# Batched replicas make activations of 10-100 MB that torch allocates and frees every step; glibc
# serves blocks that large with fresh mmaps, so each step paid for zeroing new pages (at m = 4096,
# 105 replicas, system time was larger than the arithmetic). Transparent huge pages for torch's
# CPU allocations cut it about 4x (benchmarks/RESULTS.md). Read by torch at its first allocation,
# so it only acts when lazyphase is imported before torch allocates; set it to 0 to opt out.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

__version__ = "0.1.0"
