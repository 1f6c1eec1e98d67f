"""The L2 penalty on the critic's layers of the MMD-GAN code (Bińkowski et al. 2018, `add_l2_penalty`,
run with `--L2_discriminator_penalty=1` by its scripts): for the real and the fake batch, each sample's
mean squared activation of every hidden layer and of the output, summed over the layers and the two
batches, averaged over the samples:
    penalty = mean_b Σ_layers [ mean(h(real_b)²) + mean(h(fake_b)²) ].
It keeps the critic's features from growing without bound (the MMD² of a deep kernel rises with their scale).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, List

import torch
from torch import nn

__all__ = ["recording_layers", "layer_penalty"]


@contextmanager
def recording_layers(critic: nn.Module) -> Iterator[List[torch.Tensor]]:
    """Within the block, the outputs of critic's hidden layers (its `hidden_layers()`) are appended to the
    yielded list on every forward pass. critic may be wrapped (DistributedDataParallel: its `.module`)."""
    network = getattr(critic, "module", critic)
    if not callable(getattr(network, "hidden_layers", None)):
        raise TypeError(f"the L2 penalty on the critic's layers needs a critic with a hidden_layers() method "
                        f"(as gan.networks' critics); got {type(network).__name__}")
    recorded: List[torch.Tensor] = []
    handles = [layer.register_forward_hook(lambda module, inputs, output: recorded.append(output))
               for layer in network.hidden_layers()]
    try:
        yield recorded
    finally:
        for handle in handles:
            handle.remove()


def layer_penalty(layers: List[torch.Tensor]) -> torch.Tensor:
    """mean over samples of Σ over `layers` (one batch's tensors (B, ...)) of each sample's mean square
    (0-dim); the penalty above is this of the real batch's layers plus this of the fake batch's."""
    if not layers:
        raise ValueError("layer_penalty needs at least one recorded layer")
    per_sample = sum(layer.flatten(1).pow(2).mean(1) for layer in layers)
    return per_sample.mean()
