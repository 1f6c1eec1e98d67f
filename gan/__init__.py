"""gan: Scaled-MMD GANs and their baselines, trained with fastmmd's fused losses (docs/smmd.md, docs/gan_recipes.md)."""
