"""Generators and critics for 32×32 images: the DCGAN of SN-GAN (Miyato et al. 2018, the architecture of
the Scaled-MMD and MMD-GAN CIFAR-10 experiments) and the ResNet of SN-GAN / WGAN-GP.

`width` is the channel count of the first critic layer and of the last generator layer (64 in the papers);
the embedded digits default uses a narrower network so that it trains on a CPU. Critics have no batch
norm: SMMD's Jacobian term and the gradient penalties need each output to depend on its own input only.
Images are (B, C, 32, 32) in [-1, 1]; noise is (B, z_dim); critics return (B, out_dim).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gan.initialisation import initialise
from gan.spectral import constrain

__all__ = ["ARCHITECTURES", "NetworkConfig", "build_generator", "build_critic", "sample_noise"]

ARCHITECTURES = ("dcgan", "resnet")
IMAGE_SIZE = 32


@dataclass(frozen=True)
class NetworkConfig:
    """architecture: "dcgan" or "resnet"; channels: of the images (1 or 3); width: base channel count;
    z_dim: noise dimension; critic_out: critic output dimension (the kernel's feature space for MMD
    losses, 1 for the others); constraint: "none", "spectral" or "spectral-scaled" on every critic weight;
    init: the weights' initialisation, "torch" or "scaled-mmd-gan" (gan.initialisation)."""

    architecture: str = "dcgan"
    channels: int = 3
    width: int = 64
    z_dim: int = 128
    critic_out: int = 1
    constraint: str = "none"
    init: str = "torch"


class DCGANGenerator(nn.Module):
    """z (B, z_dim) -> linear to 4×4×8w -> three 4×4 stride-2 transposed convs (8w→4w→2w→w, batch norm,
    ReLU) -> 3×3 conv to C channels -> tanh: (B, C, 32, 32)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        w = config.width
        self.project = nn.Sequential(nn.Linear(config.z_dim, 4 * 4 * 8 * w), nn.Unflatten(1, (8 * w, 4, 4)),
                                     nn.BatchNorm2d(8 * w), nn.ReLU())
        layers = []
        for c_in, c_out in ((8 * w, 4 * w), (4 * w, 2 * w), (2 * w, w)):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Conv2d(w, config.channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z))


class DCGANCritic(nn.Module):
    """(B, C, 32, 32) -> seven convs (3×3 then 4×4 stride 2, alternating; w, w, 2w, 2w, 4w, 4w, 8w
    channels; leaky ReLU 0.2) -> linear: (B, out_dim)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        w = config.width
        plan = ((config.channels, w, 3, 1), (w, w, 4, 2), (w, 2 * w, 3, 1), (2 * w, 2 * w, 4, 2),
                (2 * w, 4 * w, 3, 1), (4 * w, 4 * w, 4, 2), (4 * w, 8 * w, 3, 1))
        layers = []
        for c_in, c_out, size, stride in plan:
            layers += [nn.Conv2d(c_in, c_out, size, stride, 1), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(8 * w * 4 * 4, config.critic_out)

    def hidden_layers(self):
        """The modules whose outputs are the critic's hidden layers (each convolution's activation)."""
        return [m for m in self.features if isinstance(m, nn.LeakyReLU)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


class UpBlock(nn.Module):
    """Residual block of the SN-GAN ResNet generator: BN-ReLU-upsample-conv-BN-ReLU-conv, plus an
    upsampled 1×1 shortcut; doubles the resolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.main = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Upsample(scale_factor=2),
                                  nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, 1, 1))
        self.shortcut = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class DownBlock(nn.Module):
    """Residual block of the SN-GAN ResNet critic: (ReLU-)conv-ReLU-conv(-avgpool), plus a 1×1 shortcut
    (pooled when downsampling). The first block takes the image and has no leading ReLU."""

    def __init__(self, c_in: int, c_out: int, downsample: bool, first: bool = False):
        super().__init__()
        pool = [nn.AvgPool2d(2)] if downsample else []
        lead = [] if first else [nn.ReLU()]
        self.main = nn.Sequential(*lead, nn.Conv2d(c_in, c_out, 3, 1, 1), nn.ReLU(),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1), *pool)
        if first:
            self.shortcut = nn.Sequential(*pool, nn.Conv2d(c_in, c_out, 1))
        elif downsample or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1), *pool)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x) + self.shortcut(x)


class ResNetGenerator(nn.Module):
    """z -> linear to 4×4×4w -> three up-blocks (4w channels) -> BN-ReLU-3×3 conv-tanh: (B, C, 32, 32)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        c = 4 * config.width
        self.project = nn.Sequential(nn.Linear(config.z_dim, 4 * 4 * c), nn.Unflatten(1, (c, 4, 4)))
        self.body = nn.Sequential(UpBlock(c), UpBlock(c), UpBlock(c), nn.BatchNorm2d(c), nn.ReLU(),
                                  nn.Conv2d(c, config.channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z))


class ResNetCritic(nn.Module):
    """(B, C, 32, 32) -> four residual blocks (4w channels; the first two downsample) -> ReLU -> sum over
    space -> linear: (B, out_dim)."""

    def __init__(self, config: NetworkConfig):
        super().__init__()
        c = 4 * config.width
        self.blocks = nn.Sequential(DownBlock(config.channels, c, True, first=True), DownBlock(c, c, True),
                                    DownBlock(c, c, False), DownBlock(c, c, False), nn.ReLU())
        self.head = nn.Linear(c, config.critic_out)

    def hidden_layers(self):
        """The modules whose outputs are the critic's hidden layers (each residual block's output)."""
        return [m for m in self.blocks if isinstance(m, DownBlock)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(images).sum(dim=(2, 3)))


def sample_noise(n: int, z_dim: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """The generators' prior z ~ U(−1, 1)^z_dim: (n, z_dim) on the CPU, drawn from `generator`."""
    return torch.rand((n, z_dim), generator=generator, dtype=dtype) * 2 - 1


def _check(config: NetworkConfig) -> None:
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}; got {config.architecture!r}")
    for name in ("channels", "width", "z_dim", "critic_out"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


def build_generator(config: NetworkConfig) -> nn.Module:
    """The generator, initialised by config.init."""
    _check(config)
    generator = (DCGANGenerator if config.architecture == "dcgan" else ResNetGenerator)(config)
    return initialise(generator, config.init, "generator")


def build_critic(config: NetworkConfig) -> nn.Module:
    """The critic, initialised by config.init, with config.constraint applied to all its weights."""
    _check(config)
    critic = (DCGANCritic if config.architecture == "dcgan" else ResNetCritic)(config)
    return constrain(initialise(critic, config.init, "critic"), config.constraint)
