"""python -m gan.evaluate: KID, FID and the classifier's Inception Score of a trained generator.

    python -m gan.evaluate --checkpoint runs/smmd-digits/checkpoint.pt --samples 2000

The generator is rebuilt from the checkpoint and sampled with fresh noise (--seed); the real reference is
the run's dataset (up to --real images). Features: the digits classifier for digits, the FID Inception
network otherwise. KID is fastmmd.kid's exact estimate with its std (or --kid-mode torchmetrics etc. for a
published subset convention, on subsets of --kid-subset-size rows: both sets must hold that many; never
shrunk silently). Prints one JSON object (also written to --json when given). Bad input (a missing or
unreadable checkpoint, too few samples): one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict

import torch

import fastmmd
from gan.atomic import write_text_atomically
from gan.config import MIN_KID_SAMPLES, OneLineParser, TrainConfig, at_least
from gan.data import DataError, load_dataset
from gan.embedding import Embedding
from gan.evaluation import embed_generator, embed_images, feature_network
from gan.image_metrics import fid, inception_score
from gan.networks import NetworkConfig, build_generator, sample_noise
from gan.train import (
    CHECKPOINT_FORMAT,
    PAYLOAD_ERRORS,
    RunError,
    load_checkpoint,
    one_line,
    resolve_device,
    restore_failure,
)

__all__ = ["evaluate_checkpoint", "main"]

KID_MODES = ("exact", "torchmetrics", "torch-fidelity", "clean-fid", "tf-gan")
KID_SUBSET_SIZE = 1000


def _generator(payload: Dict, device) -> torch.nn.Module:
    generator = build_generator(NetworkConfig(**payload["networks"]))
    generator.load_state_dict(payload["trainer"]["generator"])
    dtype = next(iter(payload["trainer"]["generator"].values())).dtype
    return generator.to(device, dtype)


def _kid(real: Embedding, fake: Embedding, mode: str, subset_size: int = KID_SUBSET_SIZE) -> Dict[str, float]:
    if mode == "exact":
        result = fastmmd.kid(real.features.double(), fake.features.double(), subsets=None)
    else:
        result = fastmmd.kid(real.features.double(), fake.features.double(), subset_size=subset_size, mode=mode)
    return {"kid": float(result.mean), "kid_std": float(result.std)}


def _check_subset_size(mode: str, subset_size: int, samples: int, real: int, data) -> None:
    """RunError naming --samples or --real (or the dataset) when a set is smaller than the subsets of a
    subset mode: fastmmd.kid never shrinks them, nor does this."""
    if mode == "exact":
        return
    for flag, count in (("--samples", samples), ("--real", min(real, len(data)))):
        if count < subset_size:
            smaller = f"--kid-subset-size <= {min(samples, real, len(data))}"
            if flag == "--real" and real >= subset_size:  # the dataset is the limit
                given, fix = f"{data.name} holds only {len(data)} images", f"pass {smaller}"
            else:
                given, fix = f"{flag} is {count}", f"pass {flag} >= {subset_size} or {smaller}"
            raise RunError(f"--kid-mode {mode} takes subsets of {subset_size} images from each set "
                           f"(--kid-subset-size), but {given}; {fix}")


def evaluate_checkpoint(checkpoint, samples: int = 2000, real: int = 10000, seed: int = 0, device="auto",
                        kid_mode: str = "exact", inception_weights=None,
                        kid_subset_size: int = KID_SUBSET_SIZE) -> Dict[str, float]:
    """Metrics of the generator in `checkpoint` on `samples` generated and up to `real` real images."""
    path = Path(checkpoint)
    payload = load_checkpoint(path, formats=(1, CHECKPOINT_FORMAT))
    try:
        config = TrainConfig.from_dict(payload["config"])
    except PAYLOAD_ERRORS as error:
        raise restore_failure(path, "config", error) from None
    device = resolve_device(device)
    try:
        generator = _generator(payload, device)
    except PAYLOAD_ERRORS as error:
        raise restore_failure(path, "generator", error) from None
    data = load_dataset(config.dataset, data_root=config.data_root)
    rng = torch.Generator().manual_seed(seed)
    picked = torch.randperm(len(data), generator=rng)[:real]
    if len(picked) < MIN_KID_SAMPLES:
        raise RunError(f"{data.name} holds {len(data)} images; KID's reference (--real) needs at least "
                       f"{MIN_KID_SAMPLES}")
    _check_subset_size(kid_mode, kid_subset_size, samples, real, data)
    features = feature_network(config.dataset, device, inception_weights or config.inception_weights)
    real_embedding = embed_images(features, data.batch(picked).to(device))
    noise = sample_noise(samples, config.z_dim, rng).to(device, next(generator.parameters()).dtype)
    fake_embedding = embed_generator(generator, noise, features)
    score, score_std = inception_score(fake_embedding.logits)
    subsets = {} if kid_mode == "exact" else {"kid_subset_size": kid_subset_size}
    return {"step": int(payload["trainer"]["step"]), "loss": config.loss, "dataset": config.dataset,
            "features": features.name, "samples": samples, "real": len(picked),
            **_kid(real_embedding, fake_embedding, kid_mode, kid_subset_size), "kid_mode": kid_mode, **subsets,
            "fid": fid(real_embedding.features, fake_embedding.features),
            "inception_score": score, "inception_score_std": score_std}


def main(argv=None) -> int:
    parser = OneLineParser(prog="python -m gan.evaluate", description=__doc__.splitlines()[0],
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    samples = at_least(MIN_KID_SAMPLES, "the exact KID's standard deviation needs 4 samples per set")
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt written by gan.train")
    parser.add_argument("--samples", type=samples, default=2000, help="generated images")
    parser.add_argument("--real", type=samples, default=10000,
                        help="at most this many real images (random, --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and of the real subset")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--kid-mode", default="exact", choices=KID_MODES,
                        help="exact: all pairs with the estimator's std; others: that library's subsets")
    parser.add_argument("--kid-subset-size", type=at_least(2, "the unbiased MMD² pairs distinct rows"),
                        default=KID_SUBSET_SIZE,
                        help="rows of each set per subset of the subset modes (for tf-gan: the largest block); "
                             "--samples and the real images must be at least this many")
    parser.add_argument("--inception-weights", default=None, help="pt_inception-2015-12-05 weights file")
    parser.add_argument("--json", default=None, help="also write the result to this file")
    args = parser.parse_args(argv)
    from gan.inception import InceptionWeightsError

    try:
        result = evaluate_checkpoint(args.checkpoint, args.samples, args.real, args.seed, args.device,
                                     args.kid_mode, args.inception_weights, args.kid_subset_size)
        text = json.dumps(result, indent=2)
        if args.json:
            try:
                write_text_atomically(args.json, text + "\n")
            except OSError as error:
                raise RunError(f"--json {args.json}: cannot write it ({one_line(error)})") from None
    except (DataError, RunError, InceptionWeightsError, FileNotFoundError, ValueError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
