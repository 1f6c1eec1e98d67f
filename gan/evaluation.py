"""KID, FID and Inception Score of a generator against the training data, on the features of a fixed network:
the digits classifier for the embedded dataset, the FID Inception network for natural images.

KID is fastmmd.kid's exact unbiased estimate over all pairs of the two feature sets (subsets=None), with its
standard deviation from the estimator's variance: no random subsets, so the curve's only noise is the samples.
FID and the Inception Score (of the network's class logits) come from the same features, for comparison.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch

import fastmmd
from gan.embedding import Embedding
from gan.image_metrics import fid, inception_score

__all__ = ["feature_network", "generate", "embed_images", "embed_generator", "Evaluator"]


def feature_network(dataset: str, device="cpu", inception_weights: Optional[str] = None, cache_dir=None):
    """The feature network for `dataset` ("digits" or another spec): an object with .name and
    .embed(images (N, C, H, W) in [-1, 1]) -> Embedding."""
    if dataset == "digits":
        from gan.digits_classifier import load_digits_classifier

        return load_digits_classifier(cache_dir=cache_dir, device=device)
    from gan.inception import load_inception

    return load_inception(weights=inception_weights, device=device)


@torch.no_grad()
def generate(generator: torch.nn.Module, noise: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Images (N, C, H, W) of generator for noise (N, z_dim), in eval mode (batch-norm running statistics),
    restoring the generator's mode after."""
    was_training = generator.training
    generator.eval()
    try:
        return torch.cat([generator(chunk) for chunk in noise.split(batch_size)])
    finally:
        generator.train(was_training)


def embed_images(features, images: torch.Tensor, batch_size: int = 500) -> Embedding:
    """Embedding of images (N, C, H, W) in [-1, 1] by the feature network, `batch_size` at a time."""
    return Embedding.concat(features.embed(chunk) for chunk in images.split(batch_size))


def embed_generator(generator, noise, features, batch_size: int = 500) -> Embedding:
    parts = [features.embed(generate(generator, chunk)) for chunk in noise.split(batch_size)]
    return Embedding.concat(parts)


@dataclass
class Evaluator:
    """Metrics of generator(noise) against the real features; noise (N, z_dim) is fixed for the whole run.
    real: Embedding of the real images, computed once."""

    features: object
    real: Embedding
    noise: torch.Tensor

    @classmethod
    def from_images(cls, features, real_images: torch.Tensor, noise: torch.Tensor) -> "Evaluator":
        return cls(features, embed_images(features, real_images), noise)

    def __call__(self, generator) -> Dict[str, float]:
        """{"kid": exact unbiased KID, "kid_std": its standard deviation, "fid", "inception_score"}."""
        fake = embed_generator(generator, self.noise.to(next(generator.parameters()).device), self.features)
        result = fastmmd.kid(self.real.features.double(), fake.features.double(), subsets=None)
        return {"kid": float(result.mean), "kid_std": float(result.std),
                "fid": fid(self.real.features, fake.features), "inception_score": inception_score(fake.logits)[0]}
