"""B2: the deep phase diagram over (γ_h, s), one regime exponent and boundary per layer."""
