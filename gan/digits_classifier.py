"""The fixed feature network for KID/FID on the digits dataset: a small CNN classifier of the 10 digits.

It is trained once, on digits_images("train") (gan/data.py), with a fixed seed and random ±2 px translations
(so that slightly misplaced generated digits still embed sensibly), evaluated on digits_images("test"), and
cached as `digits_classifier_v2.pt` in the cache folder ($GAN_CACHE if set, else ~/.cache/gan):

    features = load_digits_classifier()          # trains on the first call (seconds), reads the cache after
    emb = features.embed(images)                 # images (N, 1, 32, 32) in [-1, 1] -> Embedding, (N, 128), (N, 10)

The cache file holds only tensors, ints, floats and strings, so torch.load(path, weights_only=True) reads it.
It is written atomically (a temporary file renamed over it), and one that is unreadable or of another
version or shape is retrained and replaced.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import torch
from torch import nn

from gan.atomic import save_torch_atomically
from gan.data import digits_images
from gan.embedding import Embedding

__all__ = ["DigitsClassifier", "DigitsFeatures", "TrainConfig", "load_digits_classifier",
           "train_digits_classifier", "default_cache_dir", "CACHE_NAME", "VERSION", "FEATURES", "IMAGE_SIZE"]

VERSION = 2
CACHE_NAME = f"digits_classifier_v{VERSION}.pt"
FEATURES = 128
CLASSES = 10
IMAGE_SIZE = 32


class DigitsClassifier(nn.Module):
    """(N, 1, 32, 32) float in [-1, 1] -> logits (N, 10); embed_batch also gives the (N, 128) features.

    The digits are 8 × 8 images upsampled 4×, so the first layer is a 4 × 4 convolution of stride 2: it still
    sees every pixel, and the network costs a quarter of one that starts with 3 × 3 convolutions at full
    resolution (training fits in seconds on two cores). Spatial sizes: 32 -> 16 -> 8 -> 4 -> 2.
    """

    def __init__(self, generator: Optional[torch.Generator] = None):
        """The weights are drawn from generator (default: one seeded 0), never from the global RNG."""
        super().__init__()
        with torch.device("meta"):  # no default initialisation, which would draw from the global RNG
            self._build()
        self.to_empty(device="cpu")
        _initialise(self, generator if generator is not None else torch.Generator().manual_seed(0))

    def _build(self) -> None:
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 8 × 8
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),            # 4 × 4
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),           # 2 × 2
            nn.Flatten(),
            nn.Linear(128 * 4, FEATURES), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURES, CLASSES)
        # Set after training so that the features have mean square 1 per dimension on the training digits,
        # which puts KID on the scale it has on Inception features rather than on the ReLUs' arbitrary one.
        self.register_buffer("feature_scale", torch.ones(()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))

    def embed_batch(self, images: torch.Tensor) -> Embedding:
        """images (N, 1, 32, 32) -> Embedding(features (N, F), logits (N, 10)), on the model's device."""
        features = self.body(images)
        return Embedding(features * self.feature_scale, self.head(features))


@dataclass(frozen=True)
class TrainConfig:
    """Adam for `epochs` passes over the 1437 training digits; shift: the largest random translation (px)."""

    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    shift: int = 2
    seed: int = 0


@dataclass
class DigitsFeatures:
    """The trained classifier in eval mode on `device`, as the training loop's feature network."""

    model: DigitsClassifier
    test_accuracy: float
    device: torch.device
    name: str = "digits-classifier"

    @property
    def feature_dim(self) -> int:
        return self.model.head.in_features

    @torch.no_grad()
    def embed(self, images: torch.Tensor, batch_size: int = 500) -> Embedding:
        """images: float (N, 1, 32, 32) in [-1, 1], any device -> Embedding of CPU float32 (N, F), (N, 10)."""
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"images must be (N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be floats in [-1, 1], got {images.dtype}")
        self.model.eval()
        parts = [self.model.embed_batch(chunk.to(self.device, torch.float32))
                 for chunk in images.split(batch_size)]
        parts = [Embedding(p.features.float().cpu(), p.logits.float().cpu()) for p in parts]
        if not parts:
            return Embedding(torch.zeros(0, self.feature_dim), torch.zeros(0, CLASSES))
        return Embedding.concat(parts)


def default_cache_dir() -> Path:
    """$GAN_CACHE if set, else ~/.cache/gan."""
    return Path(os.environ.get("GAN_CACHE") or Path.home() / ".cache" / "gan").expanduser()


def load_digits_classifier(cache_dir: Union[str, Path, None] = None, device="cpu",
                           verbose: bool = False) -> DigitsFeatures:
    """The cached classifier from cache_dir/digits_classifier_v2.pt, trained (and cached) first if the file is
    missing, unreadable, or of another version or shape."""
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = path / CACHE_NAME
    loaded = _read_cache(path)
    if loaded is None:
        start = time.perf_counter()
        model, accuracy = train_digits_classifier()
        if verbose:
            print(f"trained the digits classifier in {time.perf_counter() - start:.1f} s: "
                  f"test accuracy {100 * accuracy:.2f}%, cached in {path}")
        _write_cache(path, model, accuracy)
    else:
        model, accuracy = loaded
    device = torch.device(device)
    return DigitsFeatures(model.to(device).eval().requires_grad_(False), accuracy, device)


def train_digits_classifier(config: TrainConfig = TrainConfig()) -> Tuple[DigitsClassifier, float]:
    """Train on the CPU on digits_images("train"); (the model in eval mode, accuracy on digits_images("test")).
    Uses its own torch.Generator; the global RNG state is neither read nor changed."""
    generator = torch.Generator().manual_seed(config.seed)
    model = DigitsClassifier(generator)
    images, labels = digits_images("train", IMAGE_SIZE)
    with _deterministic_algorithms():
        _fit(model, _to_signed(images), labels, config, generator)
    model.eval()
    with torch.no_grad():
        model.feature_scale.fill_(float(model.body(_to_signed(images)).pow(2).mean().rsqrt()))
    return model, _accuracy(model, *digits_images("test", IMAGE_SIZE))


def _fit(model: DigitsClassifier, images: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
         generator: torch.Generator) -> None:
    """Adam with a one-cycle learning rate; images (N, 1, 32, 32) in [-1, 1], labels (N,)."""
    batches = math.ceil(len(images) / config.batch_size)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr,
                                                   total_steps=max(1, config.epochs * batches))
    model.train()
    for _ in range(config.epochs):
        for batch in torch.randperm(len(images), generator=generator).split(config.batch_size):
            loss = nn.functional.cross_entropy(model(_translate(images[batch], config.shift, generator)),
                                               labels[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()


def _initialise(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Conv2d/Linear initialisation, drawn from generator instead of the global RNG."""
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            bound = 1.0 / math.sqrt(layer.weight[0].numel())
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def _translate(images: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W), each image moved by its own random (dy, dx) in [-shift, shift]²;
    the uncovered border is background (-1)."""
    if shift == 0:
        return images
    b, _, h, w = images.shape
    padded = nn.functional.pad(images, (shift,) * 4, value=-1.0)
    dy, dx = torch.randint(0, 2 * shift + 1, (2, b, 1), generator=generator)
    rows = (dy + torch.arange(h))[:, None, :, None]   # (B, 1, H, 1)
    cols = (dx + torch.arange(w))[:, None, None, :]   # (B, 1, 1, W)
    batch = torch.arange(b)[:, None, None, None]
    channel = torch.arange(images.shape[1])[None, :, None, None]
    return padded[batch, channel, rows, cols]


@torch.no_grad()
def _accuracy(model: DigitsClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    predicted = model(_to_signed(images)).argmax(dim=1)
    return int((predicted == labels).sum()) / len(labels)


def _to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> float32 in [-1, 1]."""
    return images.float() / 127.5 - 1.0


@contextlib.contextmanager
def _deterministic_algorithms():
    """torch.use_deterministic_algorithms(True) inside, the caller's setting restored after."""
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


# ---- the cache file ----------------------------------------------------------------------------------------

def _write_cache(path: Path, model: DigitsClassifier, accuracy: float) -> None:
    """Atomically; a folder that cannot be written only costs a warning (the model is still returned)."""
    payload = {"format": "digits_classifier", "version": VERSION, "feature_dim": FEATURES,
               "test_accuracy": accuracy, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_torch_atomically(payload, path)
    except OSError as error:
        warnings.warn(f"could not cache the digits classifier in {path}: {error}", RuntimeWarning, stacklevel=3)


def _read_cache(path: Path) -> Optional[Tuple[DigitsClassifier, float]]:
    """(model, test accuracy) from the cache file, or None if it is missing, unreadable, or not this version."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - damaged bytes make the unpickler raise nearly anything (IndexError,
        return None    # KeyError, UnicodeDecodeError, ...); a damaged cache only means training again
    if not isinstance(payload, dict) or payload.get("version") != VERSION \
            or payload.get("feature_dim") != FEATURES or not isinstance(payload.get("test_accuracy"), float):
        return None
    model = DigitsClassifier()
    try:
        model.load_state_dict(payload.get("state_dict"))
    except (RuntimeError, TypeError):  # missing or misshapen tensors, or no state_dict at all
        return None
    return model.eval(), payload["test_accuracy"]
