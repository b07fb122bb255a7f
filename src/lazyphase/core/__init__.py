"""Core numerics: activations, schemes, data, the network, its exact NTK, limiting kernels and the
batched trainer. Imports torch, numpy and scipy only (no pandas, h5py, yaml, matplotlib)."""
