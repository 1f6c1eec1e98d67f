"""gan: Scaled-MMD GANs and their baselines, trained with fastmmd's fused losses (REFERENCES.md §3–§9)."""
