"""What a feature network returns for a batch of images: the features KID and FID compare, and class logits
(Inception Score, or the digits classifier's accuracy)."""
from __future__ import annotations

from typing import NamedTuple

import torch


class Embedding(NamedTuple):
    """features: (N, F) float32 on the CPU; logits: (N, K) float32 on the CPU."""

    features: torch.Tensor
    logits: torch.Tensor

    @staticmethod
    def concat(parts) -> "Embedding":
        parts = list(parts)
        return Embedding(torch.cat([p.features for p in parts]), torch.cat([p.logits for p in parts]))
