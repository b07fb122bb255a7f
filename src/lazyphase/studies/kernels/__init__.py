"""Kernel baselines beside the network: Θ0, after-kernel and infinite-width NTK predictors."""
