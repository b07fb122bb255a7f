"""lazyphase: when is neural-network training lazy? Width, initial output scale and scheme.

Modules: :mod:`~lazyphase.data` (sphere data, teacher, seeds), :mod:`~lazyphase.model`
(network, schemes, κ), :mod:`~lazyphase.kernels` (exact per-layer NTK), :mod:`~lazyphase.train`
(batched GD), :mod:`~lazyphase.store` (HDF5 run files), :mod:`~lazyphase.cli`.
"""

__version__ = "0.1.0"
