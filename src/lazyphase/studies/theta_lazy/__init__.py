"""A: the theta-lazy experiments (Li, Luo & Zhou): RD exponents, thresholds, loss decay, Gram
drift (A1-A3, A5) and the Gram concentration at initialization (A4)."""
