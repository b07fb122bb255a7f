"""The learning-rate axis (issue 28): the (γ0, η/η_crit) phase portrait of one parameterization
and the largest stable step against width per parameterization (docs/conventions.md §7)."""
