"""The settings of a training run (one dataclass, saved in the checkpoint) and the command line that fills it."""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, fields
from typing import Optional

from gan.losses import LOSSES
from gan.networks import ARCHITECTURES
from gan.recipes import SCALE_FORMS, recipe_for

__all__ = ["TrainConfig", "build_parser", "config_from_args", "DIGITS_WIDTH", "MIN_KID_SAMPLES", "OneLineParser",
           "at_least"]

DIGITS_WIDTH = 16  # the embedded dataset's default network width: trains on a 2-core CPU in minutes
MIN_KID_SAMPLES = 4  # the exact KID (fastmmd.kid(..., subsets=None)) and its std need 4 samples per set


@dataclass(frozen=True)
class TrainConfig:
    """Every field is a flag of `python -m gan.train` (see build_parser for their meaning); None means the
    loss's published default (gan.recipes) or the dataset's default (width, output folder)."""

    loss: str = "smmd"
    dataset: str = "digits"
    data_root: Optional[str] = None
    steps: int = 1000
    batch_size: int = 64
    out: Optional[str] = None
    seed: int = 0
    device: str = "auto"
    architecture: str = "dcgan"
    width: Optional[int] = None
    z_dim: int = 128
    lr: Optional[float] = None
    critic_steps: Optional[int] = None
    eval_every: int = 100
    eval_samples: int = 1000
    eval_real: int = 10000
    log_every: int = 10
    checkpoint_every: int = 100
    lr_adapt: Optional[bool] = None
    adapt_every: int = 2000
    smmd_scale: str = "reference"
    mmd_backend: str = "auto"
    dtype: str = "float32"
    inception_weights: Optional[str] = None
    progress: bool = True

    def resolved_width(self) -> int:
        if self.width is not None:
            return self.width
        return DIGITS_WIDTH if self.dataset == "digits" else 64

    def resolved_lr_adapt(self) -> bool:
        return self.lr_adapt if self.lr_adapt is not None else recipe_for(self.loss).lr_adapt

    def resolved_out(self) -> str:
        if self.out is not None:
            return self.out
        name = self.dataset.split(":")[0]
        return f"runs/{self.loss}-{name}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr ("PROG: error: MESSAGE (see --help)") and exit
    status 2, without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see --help)\n")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _positive(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _seed(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 2 ** 63 - 2:  # torch's generators take 64-bit seeds; the evaluation uses seed + 1
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**63 - 2], got {text}")
    return value


def at_least(minimum: int, why: str):
    """An argparse type: an integer >= minimum; `why` (the reason for the minimum) goes in the error."""

    def parse(text: str) -> int:
        value = _integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} ({why}), got {text}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


_kid_samples = at_least(MIN_KID_SAMPLES, "the exact KID's standard deviation needs 4 samples per set")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    p = OneLineParser(
        prog="python -m gan.train",
        description="Train a GAN with fastmmd's fused losses. With no flag: an SMMD-GAN on the embedded digits "
                    "(scikit-learn's handwritten digits at 32×32), on the CPU in minutes. Writes metrics.jsonl, "
                    "sample grids, kid_curve.png and checkpoint.pt in --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--loss", default=d.loss, choices=tuple(LOSSES),
                   help="objective; each comes with its published optimiser, critic constraint and step schedule "
                        "(see gan/recipes.py): smmd = scaled MMD, sn-smmd = with the spectral parametrization, "
                        "mmd = MMD-GAN (weight clipping), mmd-gp = MMD-GAN with the witness-gradient penalty, "
                        "wgan, wgan-gp, sn-gan (hinge), gan (non-saturating), fgan-* (f-GAN divergences)")
    p.add_argument("--dataset", default=d.dataset,
                   help="digits (embedded, no download), cifar10 (torchvision; downloads when online), "
                        "folder:PATH (image files, center-cropped), npz:PATH (an array 'images' of "
                        "(N,H,W[,C]) or (N,C,H,W), uint8 or floats in [0,1])")
    p.add_argument("--data-root", default=d.data_root, help="where cifar10 is (or is downloaded to)")
    p.add_argument("--steps", type=_positive, default=d.steps, help="generator steps in all (a resumed run "
                   "continues to this count)")
    p.add_argument("--batch-size", type=_positive, default=d.batch_size, help="real and fake images per step")
    p.add_argument("--out", default=d.out, help="output folder (default runs/LOSS-DATASET)")
    p.add_argument("--seed", type=_seed, default=d.seed,
                   help="seed of the networks, the batches and the noise (an integer in [0, 2**63 - 2])")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pt with its saved settings (only --steps, --device and "
                        "--no-progress may change); exactly the run an uninterrupted one would have been. An "
                        "error when OUT holds no checkpoint.pt")
    p.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"),
                   help="auto: cuda when available")
    p.add_argument("--architecture", default=d.architecture, choices=ARCHITECTURES,
                   help="SN-GAN's DCGAN or ResNet generator and critic (32×32)")
    p.add_argument("--width", type=_positive, default=d.width,
                   help=f"base channel count (default {DIGITS_WIDTH} for digits, 64 otherwise, as the papers)")
    p.add_argument("--z-dim", type=_positive, default=d.z_dim, help="noise dimension, z ~ U(-1, 1)^z_dim")
    p.add_argument("--lr", type=_positive_float, default=d.lr, help="learning rate (default: the loss's)")
    p.add_argument("--critic-steps", type=_positive, default=d.critic_steps,
                   help="critic steps per generator step (default: the loss's schedule, e.g. 5 with 10 "
                        "early and every 500th for the MMD losses)")
    p.add_argument("--eval-every", type=_positive, default=d.eval_every,
                   help="KID and a sample grid every this many generator steps (and at step 0 and the end)")
    p.add_argument("--eval-samples", type=_kid_samples, default=d.eval_samples,
                   help=f"generated images per KID evaluation (fixed noise for the whole run; at least "
                        f"{MIN_KID_SAMPLES})")
    p.add_argument("--eval-real", type=_kid_samples, default=d.eval_real,
                   help=f"at most this many real images as KID's reference (a fixed subset; at least "
                        f"{MIN_KID_SAMPLES})")
    p.add_argument("--log-every", type=_positive, default=d.log_every, help="a metrics line every this many steps")
    p.add_argument("--checkpoint-every", type=_positive, default=d.checkpoint_every,
                   help="write checkpoint.pt every this many steps (also at the end and on Ctrl-C/SIGTERM)")
    p.add_argument("--lr-adapt", action=argparse.BooleanOptionalAction, default=d.lr_adapt,
                   help="decay the learning rates when the relative three-sample test fails 3 times in a row "
                        "(default: on for smmd, sn-smmd and mmd-gp, as their reference codes; off otherwise)")
    p.add_argument("--adapt-every", type=_positive, default=d.adapt_every,
                   help="generator steps between two relative tests of --lr-adapt")
    p.add_argument("--smmd-scale", default=d.smmd_scale, choices=tuple(SCALE_FORMS),
                   help="form of the SMMD scale (smmd, sn-smmd): reference = the Scaled-MMD-GAN code's "
                        "1/(1 + 10 E||J||^2) on [0, 1] pixels, paper = the paper's 1/(1 + E[k(X,X) + ||J||^2]); "
                        "both converted to the [-1, 1] pixels seen here (docs/gan_recipes.md)")
    p.add_argument("--mmd-backend", default=d.mmd_backend, choices=("auto", "cpu", "triton", "reference"),
                   help="fastmmd backend of the MMD losses (reference: the materialised pure-torch one)")
    p.add_argument("--dtype", default=d.dtype, choices=("float32", "float64"), help="of networks and data")
    p.add_argument("--inception-weights", default=d.inception_weights,
                   help="pt_inception-2015-12-05 weights for KID on natural images (else the torch hub cache, "
                        "downloaded when online; checked by SHA-256)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    return TrainConfig(**values)
