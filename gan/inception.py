"""The FID Inception network (docs/kid.md): pool3 features for KID and FID, logits for the Inception Score.

This is the network pytorch-fid builds in `fid_inception_v3` and torch-fidelity in its
`FeatureExtractorInceptionV3`: the TensorFlow graph inception-2015-12-05 that the original FID (TTUR) and IS
(improved-gan) code ran, in torchvision's Inception-v3 layout with three differences from torchvision's own model:
- 1008 classes, no auxiliary classifier, no `transform_input`;
- the average pools of the A, C and E blocks (Mixed_5b–5d, 6b–6e, 7b) leave the zero padding out of the
  average (TensorFlow's convention: `count_include_pad=False`);
- the last E block (Mixed_7c) max-pools in its pool branch (a quirk of that graph).
The state-dict keys are torchvision's (`Conv2d_1a_3x3.conv.weight`, `Mixed_7c.branch_pool.bn.running_var`,
`fc.weight`, ...), so the weights file `pt_inception-2015-12-05-6726825d.pth` that pytorch-fid releases loads as is.

Preprocessing follows pytorch-fid: images in [-1, 1] (our convention; pytorch-fid takes [0, 1] and maps it to
[-1, 1] after resizing, the same thing since both steps are linear), one channel repeated to three, resized to
299×299 with `F.interpolate(mode="bilinear", align_corners=False)` (no antialiasing) unless already 299×299.
torch-fidelity resizes with a TF1-compatible bilinear kernel instead, so its features differ slightly from these.

    from gan.inception import load_inception
    net = load_inception(device="cuda")            # checks the file's SHA-256, downloads it once if missing
    emb = net.embed(images)                        # Embedding(features (N, 2048), logits (N, 1008)), CPU float32;
                                                   # logits without the fc bias, the Inception Score's convention
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
from pathlib import Path
from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tv_inception

from gan.embedding import Embedding

__all__ = [
    "FEATURE_DIM",
    "FIDInception",
    "InceptionFeatures",
    "InceptionWeightsError",
    "NUM_CLASSES",
    "WEIGHTS_ENV",
    "WEIGHTS_FILE",
    "WEIGHTS_SHA256",
    "WEIGHTS_URL",
    "load_inception",
    "resolve_weights",
]

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILE
# The full SHA-256 of that file (95,628,359 bytes). Its first 8 hex digits are the ones in the file name, as
# torch.hub names files. Source: the model table `_MODEL_URL_SHA256["tf_inception_v3"]` of genforce's Hammer
# toolkit, as copied in snap-research/discoscene and qiuyu96/Carver (models/inception_model.py), which pairs
# this URL with this digest; torch-fidelity's re-release of the same weights
# (v0.2.0/weights-inception-2015-12-05-6726825d.pth) is recorded with the same digest by its users.
WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
WEIGHTS_ENV = "GAN_INCEPTION_WEIGHTS"

INPUT_SIZE = 299
NUM_CLASSES = 1008
FEATURE_DIM = 2048
_HOW_TO_PROVIDE = (f"download {WEIGHTS_URL} elsewhere and pass --inception-weights PATH "
                   f"or set {WEIGHTS_ENV}=PATH")


class InceptionWeightsError(RuntimeError):
    """The FID Inception weights are missing, cannot be downloaded, or are not the expected file."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------------------------------------------------
# The network


def _avg_pool_without_padding(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's 3×3 same-padded average pool: border windows average only the pixels they cover."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(tv_inception.InceptionA):
    """torchvision's InceptionA (same parameters) with TensorFlow's average pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        five = self.branch5x5_2(self.branch5x5_1(x))
        three = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = self.branch_pool(_avg_pool_without_padding(x))
        return torch.cat([self.branch1x1(x), five, three, pool], 1)


class _BlockC(tv_inception.InceptionC):
    """torchvision's InceptionC (same parameters) with TensorFlow's average pool."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for conv in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                     self.branch7x7dbl_5):
            double = conv(double)
        pool = self.branch_pool(_avg_pool_without_padding(x))
        return torch.cat([self.branch1x1(x), seven, double, pool], 1)


class _BlockE(tv_inception.InceptionE):
    """torchvision's InceptionE (same parameters); its pool branch is TensorFlow's average pool (Mixed_7b) or,
    with max_pool=True, a 3×3 stride-1 max pool (Mixed_7c of the FID graph)."""

    def __init__(self, in_channels: int, max_pool: bool):
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        three = torch.cat([self.branch3x3_2a(three), self.branch3x3_2b(three)], 1)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        double = torch.cat([self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double)], 1)
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_without_padding(x)
        return torch.cat([self.branch1x1(x), three, double, self.branch_pool(pooled)], 1)


def _check_layout(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [-1, 1], got dtype {images.dtype}")


class FIDInception(nn.Module):
    """The FID Inception-v3 (see the module docstring). Built with PyTorch's default initialisation: random
    weights until `load_state_dict` is given the released file (use `load_inception` for that).

    forward(images) -> (features, logits):
        images: (N, 1 or 3, H, W) floating point in [-1, 1];
        features: (N, 2048) pool3, the global average pool of Mixed_7c (what FID and KID compare);
        logits: (N, 1008) the fc layer, with its bias (logit_bias=True) or without it (logit_bias=False,
            the logits the original Inception Score code and torch-fidelity's `logits_unbiased` use).
    """

    def __init__(self):
        super().__init__()
        conv = tv_inception.BasicConv2d  # conv without bias + BatchNorm(eps=1e-3) + ReLU
        self.Conv2d_1a_3x3 = conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(80, 192, kernel_size=3)
        self.Mixed_5b = _BlockA(192, pool_features=32)
        self.Mixed_5c = _BlockA(256, pool_features=64)
        self.Mixed_5d = _BlockA(288, pool_features=64)
        self.Mixed_6a = tv_inception.InceptionB(288)
        self.Mixed_6b = _BlockC(768, channels_7x7=128)
        self.Mixed_6c = _BlockC(768, channels_7x7=160)
        self.Mixed_6d = _BlockC(768, channels_7x7=160)
        self.Mixed_6e = _BlockC(768, channels_7x7=192)
        self.Mixed_7a = tv_inception.InceptionD(768)
        self.Mixed_7b = _BlockE(1280, max_pool=False)
        self.Mixed_7c = _BlockE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """(N, 1 or 3, H, W) in [-1, 1] -> (N, 3, 299, 299): channels repeated, bilinear resize (pytorch-fid)."""
        _check_layout(images)
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        if tuple(images.shape[2:]) != (INPUT_SIZE, INPUT_SIZE):
            images = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return images

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) preprocessed -> (N, 2048) pool3 features."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)

    def forward(self, images: torch.Tensor, *, logit_bias: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        features = self.pool3(self.preprocess(images))
        logits = F.linear(features, self.fc.weight, self.fc.bias if logit_bias else None)
        return features, logits


# ---------------------------------------------------------------------------------------------------------
# Feature extraction


class InceptionFeatures:
    """A loaded FIDInception in eval mode, as a feature network for the metrics (see gan.embedding).

    logit_bias: False (default) gives the logits the Inception Score is conventionally computed from: pool3
    times the fc weight, without the fc bias, as in the original IS code (improved-gan, which took the input
    of the softmax/logits/MatMul op), torch-fidelity and torchmetrics (their `logits_unbiased` feature).
    True gives the fc layer's full output.
    """

    name = "inception-2015-12-05"

    def __init__(self, model: FIDInception, logit_bias: bool = False):
        self.model = model.eval()
        self.logit_bias = logit_bias

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def embed(self, images, batch_size: int = 50) -> Embedding:
        """images: (N, 1 or 3, H, W) float in [-1, 1], a tensor on any device or a numpy array.
        Returns Embedding(features (N, 2048), logits (N, 1008)), float32 on the CPU, computed on the model's
        device in batches of batch_size, without gradients."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        images = torch.as_tensor(images)
        _check_layout(images)
        if not bool(torch.isfinite(images).all()):
            raise ValueError("images contain non-finite values")
        if images.numel() and (float(images.min()) < -1.001 or float(images.max()) > 1.001):
            raise ValueError(f"images must be in [-1, 1], got values in [{float(images.min()):.4g}, "
                             f"{float(images.max()):.4g}] (for [0, 1] images pass 2 * images - 1)")
        device = self.device
        parts = []
        self.model.eval()
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                batch = images[start:start + batch_size].to(device=device, dtype=torch.float32)
                features, logits = self.model(batch, logit_bias=self.logit_bias)
                parts.append(Embedding(features.float().cpu(), logits.float().cpu()))
        if not parts:
            return Embedding(torch.zeros(0, FEATURE_DIM), torch.zeros(0, NUM_CLASSES))
        return Embedding.concat(parts)


# ---------------------------------------------------------------------------------------------------------
# Weights


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_sha256(path: Path) -> None:
    try:
        got = _sha256(path)
    except OSError as error:
        raise InceptionWeightsError(_one_line(f"cannot read FID Inception weights {path}: {error}")) from None
    if got != WEIGHTS_SHA256:
        raise InceptionWeightsError(
            f"FID Inception weights {path} have the wrong SHA-256: expected {WEIGHTS_SHA256}, got {got}")


def _cache_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def _download(target: Path) -> None:
    """Download WEIGHTS_URL to a temporary file next to target, check it, then rename it into place."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=target.name + ".", suffix=".partial",
                                         delete=False) as tmp:
            partial = Path(tmp.name)
    except OSError as error:
        raise InceptionWeightsError(_one_line(
            f"cannot write to {target.parent} ({error}); {_HOW_TO_PROVIDE}")) from None
    try:
        try:
            torch.hub.download_url_to_file(WEIGHTS_URL, str(partial), progress=True)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
            reason = getattr(error, "reason", None) or error
            raise InceptionWeightsError(_one_line(
                f"cannot download the FID Inception weights ({type(error).__name__}: {reason}); "
                f"{_HOW_TO_PROVIDE}")) from None
        _check_sha256(partial)
        os.replace(partial, target)
    finally:
        if partial.exists():
            partial.unlink()


def resolve_weights(weights: Union[str, Path, None] = None, download: bool = True) -> Path:
    """The path of a weights file whose SHA-256 has been checked: `weights` if given, else the environment
    variable GAN_INCEPTION_WEIGHTS if set, else torch.hub's cache `<torch.hub.get_dir()>/checkpoints/`, where the
    file is downloaded if it is missing and download is True. Raises InceptionWeightsError (one line)."""
    if weights is not None:
        path, source = Path(weights).expanduser(), "--inception-weights"
    elif os.environ.get(WEIGHTS_ENV):
        path, source = Path(os.environ[WEIGHTS_ENV]).expanduser(), WEIGHTS_ENV
    else:
        path, source = _cache_path(), None
    if source is not None:
        if not path.is_file():
            raise InceptionWeightsError(
                f"FID Inception weights file {path} (from {source}) does not exist; {_HOW_TO_PROVIDE}")
    elif not path.is_file():
        if not download:
            raise InceptionWeightsError(
                f"FID Inception weights not found at {path} and download=False; {_HOW_TO_PROVIDE}")
        _download(path)
    _check_sha256(path)
    return path


def load_inception(weights: Union[str, Path, None] = None, device: Union[str, torch.device] = "cpu",
                   download: bool = True) -> InceptionFeatures:
    """The FID Inception network with the pt_inception-2015-12-05 weights, in eval mode on `device`.

    The file is found as in `resolve_weights` (explicit path, then $GAN_INCEPTION_WEIGHTS, then torch.hub's
    checkpoint cache, downloaded there if missing and download=True), checked against its full SHA-256, and
    read with torch.load(weights_only=True). Missing `num_batches_tracked` BatchNorm counters (absent from files
    saved by old PyTorch versions, unused in eval mode) are tolerated; any other missing or unexpected key is an
    error. Raises InceptionWeightsError."""
    path = resolve_weights(weights, download=download)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise InceptionWeightsError(_one_line(f"cannot read FID Inception weights {path}: {error}")) from None
    if not isinstance(state, dict):
        raise InceptionWeightsError(f"FID Inception weights {path} hold a {type(state).__name__}, not a state dict")
    model = FIDInception()
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches
        raise InceptionWeightsError(_one_line(f"FID Inception weights {path} do not fit: {error}")) from None
    missing = [key for key in result.missing_keys if not key.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise InceptionWeightsError(_one_line(
            f"FID Inception weights {path} do not fit: missing {missing[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]}"))
    model.requires_grad_(False)
    return InceptionFeatures(model.to(device).eval())
