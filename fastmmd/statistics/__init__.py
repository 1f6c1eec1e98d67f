"""Layer 5: the statistics and tests built on the fused ops: the variance of MMD²ᵤ, KID, the permutation
and relative tests, the median heuristic (docs/mmd.md, docs/kid.md)."""
