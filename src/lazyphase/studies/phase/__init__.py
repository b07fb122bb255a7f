"""B: Luo et al.'s phase diagram of two-layer ReLU networks (B1)."""
