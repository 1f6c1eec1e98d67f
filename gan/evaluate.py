"""python -m gan.evaluate: KID, FID and the classifier's Inception Score of a trained generator.

    python -m gan.evaluate --checkpoint runs/smmd-digits/checkpoint.pt --samples 2000

The generator is rebuilt from the checkpoint and sampled with fresh noise (--seed); the real reference is
the run's dataset (up to --real images). Features: the digits classifier for digits, the FID Inception
network otherwise. KID is fastmmd.kid's exact estimate with its std (or --kid-mode torchmetrics etc. for a
published subset convention). Prints one JSON object (also written to --json when given).
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
from gan.config import TrainConfig
from gan.data import DataError, load_dataset
from gan.embedding import Embedding
from gan.evaluation import embed_generator, embed_images, feature_network
from gan.image_metrics import fid, inception_score
from gan.networks import NetworkConfig, build_generator, sample_noise
from gan.train import CHECKPOINT_FORMAT, RunError, load_checkpoint, resolve_device

__all__ = ["evaluate_checkpoint", "main"]

KID_MODES = ("exact", "torchmetrics", "torch-fidelity", "clean-fid", "tf-gan")


def _generator(payload: Dict, device) -> torch.nn.Module:
    generator = build_generator(NetworkConfig(**payload["networks"]))
    generator.load_state_dict(payload["trainer"]["generator"])
    dtype = next(iter(payload["trainer"]["generator"].values())).dtype
    return generator.to(device, dtype)


def _kid(real: Embedding, fake: Embedding, mode: str) -> Dict[str, float]:
    if mode == "exact":
        result = fastmmd.kid(real.features.double(), fake.features.double(), subsets=None)
    else:
        size = min(1000, len(real.features), len(fake.features))
        result = fastmmd.kid(real.features.double(), fake.features.double(), subset_size=size, mode=mode)
    return {"kid": float(result.mean), "kid_std": float(result.std)}


def evaluate_checkpoint(checkpoint, samples: int = 2000, real: int = 10000, seed: int = 0, device="auto",
                        kid_mode: str = "exact", inception_weights=None) -> Dict[str, float]:
    """Metrics of the generator in `checkpoint` on `samples` generated and up to `real` real images."""
    payload = load_checkpoint(Path(checkpoint), formats=(1, CHECKPOINT_FORMAT))
    config = TrainConfig.from_dict(payload["config"])
    device = resolve_device(device)
    generator = _generator(payload, device)
    data = load_dataset(config.dataset, data_root=config.data_root)
    rng = torch.Generator().manual_seed(seed)
    picked = torch.randperm(len(data), generator=rng)[:real]
    features = feature_network(config.dataset, device, inception_weights or config.inception_weights)
    real_embedding = embed_images(features, data.batch(picked).to(device))
    noise = sample_noise(samples, config.z_dim, rng).to(device, next(generator.parameters()).dtype)
    fake_embedding = embed_generator(generator, noise, features)
    score, score_std = inception_score(fake_embedding.logits)
    return {"step": int(payload["trainer"]["step"]), "loss": config.loss, "dataset": config.dataset,
            "features": features.name, "samples": samples, "real": len(picked),
            **_kid(real_embedding, fake_embedding, kid_mode), "kid_mode": kid_mode,
            "fid": fid(real_embedding.features, fake_embedding.features),
            "inception_score": score, "inception_score_std": score_std}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan.evaluate", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt written by gan.train")
    parser.add_argument("--samples", type=int, default=2000, help="generated images")
    parser.add_argument("--real", type=int, default=10000, help="at most this many real images (random, --seed)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise and of the real subset")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--kid-mode", default="exact", choices=KID_MODES,
                        help="exact: all pairs with the estimator's std; others: that library's subsets")
    parser.add_argument("--inception-weights", default=None, help="pt_inception-2015-12-05 weights file")
    parser.add_argument("--json", default=None, help="also write the result to this file")
    args = parser.parse_args(argv)
    from gan.inception import InceptionWeightsError

    try:
        if args.samples < 2 or args.real < 2:
            raise RunError("--samples and --real must be at least 2")
        result = evaluate_checkpoint(args.checkpoint, args.samples, args.real, args.seed, args.device,
                                     args.kid_mode, args.inception_weights)
    except (DataError, RunError, InceptionWeightsError, FileNotFoundError, ValueError) as error:
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        write_text_atomically(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
