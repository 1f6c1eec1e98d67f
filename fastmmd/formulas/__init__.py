"""Layer 2: the statistics' formulas on sums, counts and index draws (torch and numpy only, no backend):
estimators as weighted pair sums, the moments of MMD²ᵤ, the permutation identities, KID's subsets, the
linear-time statistic (docs/mmd.md, docs/kid.md)."""
