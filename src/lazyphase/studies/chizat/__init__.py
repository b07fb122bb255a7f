"""C: Chizat, Oyallon & Bach's lazy-training figures and the Note's re-runs (C1-C8)."""
