"""The science, one sub-package per paper family: ``theta_lazy`` (A), ``phase`` (B, Luo et al.),
``chizat`` (C, Chizat et al. and the Note). Analyses return frames, figures draw them; no study
imports another or the pipeline. ``catalog`` lists every figure."""
