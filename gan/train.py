"""python -m gan.train: train a GAN with fastmmd's fused losses and watch its KID fall.

    python -m gan.train                                   # SMMD-GAN on the embedded digits, CPU, minutes
    python -m gan.train --loss wgan-gp --steps 3000 --out runs/wgan-gp
    python -m gan.train --loss sn-smmd --dataset cifar10 --device cuda --steps 150000 --eval-every 2000
    python -m gan.train --out runs/smmd-digits --resume   # continue an interrupted run exactly
    torchrun --nproc-per-node 2 -m gan.train --out runs/smmd-ddp   # data parallel, global batch 2 × 64

Writes in --out: metrics.jsonl (a JSON object per line: integer "step", "lr", the mean losses since the last
line, "elapsed" seconds, and "kid"/"kid_std", "fid" and "inception_score" at step 0, every --eval-every
steps and at the end), samples_STEP.png (8×8 grids from fixed noise), kid_curve.png, config.json and
checkpoint.pt (atomic; written every --checkpoint-every steps, at the end and on Ctrl-C/SIGTERM). Bad data
or settings: one line on stderr and exit status 2. Under torchrun every rank trains on its share of the
global batch (gan.sharding) and rank 0 alone evaluates and writes these files.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Dict, Optional

import torch

from gan.atomic import save_torch_atomically, write_text_atomically
from gan.config import MIN_KID_SAMPLES, TrainConfig, build_parser, config_from_args
from gan.data import DataError, load_dataset
from gan.evaluation import Evaluator, embed_generator, feature_network, generate
from gan.lr_adaptation import RelativeTestLR
from gan.networks import sample_noise
from gan.run_files import MetricsLog, plot_kid_curve, read_metrics, save_grid
from gan.sharding import SINGLE, Shards, close_process_group, shards_from_environment
from gan.trainer import Trainer

__all__ = ["RunError", "train", "main", "load_checkpoint", "resolve_device", "CHECKPOINT", "one_line"]

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # 2: the reference SMMD recipe (scale form, initialisation, spectral estimates)
GRID_SAMPLES = 64
ADAPT_SAMPLES = 2048  # new generated samples per relative test (the reference codes' Scorer)


class RunError(Exception):
    """A run that cannot start (an existing checkpoint without --resume, --resume without one, an unreadable
    checkpoint or one of another format, a bad --out); str(error) is one line."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda: no CUDA device is available here")
    return torch.device(name)


def one_line(error: BaseException, limit: int = 400) -> str:
    """str(error) with its whitespace (newlines included) collapsed, cut after `limit` characters, or the
    exception's name when empty."""
    return _clip(" ".join(str(error).split()) or type(error).__name__, limit)


def _clip(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _load_failure(error: BaseException) -> str:
    """Why torch.load failed, in one line; for the weights-only unpickler only its own reason (torch's advice
    to load with weights_only=False would run whatever code the file holds)."""
    text = one_line(error, limit=sys.maxsize)
    marker = "WeightsUnpickler error:"
    if marker in text:
        reason = text.split(marker, 1)[1].split("Check the documentation", 1)[0].split(" Please use", 1)[0]
        return f"torch.load(weights_only=True) refuses it ({_clip(reason.strip().rstrip('.')) or 'no reason given'})"
    if isinstance(error, EOFError):
        return f"it ends too early ({text})" if str(error).strip() else "it is empty or ends too early"
    if isinstance(error, KeyError):  # the legacy (non-zip) unpickler looking up a byte it does not know
        return f"not a torch file (unexpected byte {text})"
    return one_line(error)


_EVALUATED = (("config", dict), ("networks", dict), ("trainer", dict), ("trainer", "generator", dict),
              ("trainer", "step", (int, float)))
_RESUMED = (("trainer", "critic", dict), ("trainer", "generator_optimizer", dict),
            ("trainer", "critic_optimizer", dict), ("trainer", "rng", torch.Tensor), ("trainer", "averages", dict),
            ("elapsed", (int, float)), ("metrics_bytes", int))


def _check_entries(payload: Dict, path: Path, entries) -> None:
    """RunError naming the first entry (a key path and the type its value must have) that payload lacks."""
    for *keys, kind in entries:
        value = payload
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, kind) or isinstance(value, bool):
            name = "".join(f"[{key!r}]" for key in keys)
            found = "missing" if value is None else f"a {type(value).__name__}"
            raise RunError(f"{path} is not a readable gan.train checkpoint: its entry {name} is {found}")


def load_checkpoint(path: Path, formats=(CHECKPOINT_FORMAT,), resuming: bool = False) -> Dict:
    """The payload of a gan.train checkpoint of one of `formats` (resuming needs this version's; sampling its
    generator works from any), with the entries gan.evaluate reads (and, when `resuming`, those a resumed
    run reads); RunError naming the path for anything else: a missing file, a folder, a file torch.load
    cannot read (only tensors and plain containers: weights_only=True), or missing entries."""
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{path} is a folder, not a gan.train checkpoint (its file is {CHECKPOINT})")
    if not path.is_file():
        raise RunError(f"{path} does not exist" if not path.exists() else f"{path} is not a regular file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises RuntimeError, UnpicklingError, EOFError, KeyError, OSError...
        raise RunError(f"{path} is not a readable gan.train checkpoint: {_load_failure(error)}") from None
    found = payload.get("format") if isinstance(payload, dict) else None
    if not isinstance(found, int) or isinstance(found, bool):
        found = None
    if found not in formats:
        other = f" (it is of format {found}, from another version of gan.train)" if found is not None else ""
        raise RunError(f"{path} is not a gan.train checkpoint of format {' or '.join(map(str, formats))}{other}")
    _check_entries(payload, path, _EVALUATED + (_RESUMED if resuming else ()))
    return payload


def restore_failure(path: Path, what: str, error: BaseException) -> RunError:
    """The RunError for a checkpoint whose entries load but do not fit (missing keys, wrong shapes or types)."""
    return RunError(f"{path} is not a readable gan.train checkpoint: its {what} cannot be restored "
                    f"({type(error).__name__}: {one_line(error)})")


# What restoring a malformed payload raises (torch's load_state_dict: RuntimeError, ValueError, KeyError).
PAYLOAD_ERRORS = (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError, StopIteration)


class _StopRequest:
    """Ctrl-C and SIGTERM set a flag that the loop reads between generator steps, so the checkpoint it
    writes holds a whole number of steps."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def check_distributable(config: TrainConfig, shards: Shards, dataset_size: int) -> None:
    """RunError for settings a run on several ranks cannot honour."""
    if not shards.distributed:
        return
    if config.batch_size * shards.world > dataset_size:
        raise RunError(f"the global batch ({shards.world} ranks × --batch-size {config.batch_size}) is larger "
                       f"than the dataset ({dataset_size} images)")


class Run:
    """A training run in its folder: the trainer, the evaluator, the metrics log and the checkpoint. On
    several ranks only the main one evaluates and writes files."""

    def __init__(self, config: TrainConfig, payload: Optional[Dict] = None, shards: Shards = SINGLE):
        self.config, self.shards = config, shards
        self.out = Path(config.resolved_out())
        self.device = resolve_device(config.device)
        data = load_dataset(config.dataset, data_root=config.data_root)
        check_distributable(config, shards, len(data))
        if min(config.eval_real, len(data)) < MIN_KID_SAMPLES:
            raise RunError(f"{data.name} holds {len(data)} images; KID's reference (--eval-real) needs at least "
                           f"{MIN_KID_SAMPLES}")
        self.trainer = Trainer(config, data, self.device, shards)
        self.metrics = MetricsLog(self.out / "metrics.jsonl")
        fixed = torch.Generator().manual_seed(config.seed + 1)
        noise = sample_noise(config.eval_samples, config.z_dim, fixed).to(self.trainer.dtype)
        self.grid_noise = noise[:GRID_SAMPLES].to(self.device)
        reference = torch.randperm(len(data), generator=fixed)[:config.eval_real]
        self.evaluator = None
        if shards.main:
            features = feature_network(config.dataset, self.device, config.inception_weights)
            self.evaluator = Evaluator.from_images(features, data.batch(reference).to(self.device), noise)
        self.adapter = (RelativeTestLR(self.trainer.recipe.lr_decay, every=config.adapt_every)
                        if config.resolved_lr_adapt() else None)
        self.elapsed = 0.0
        if payload is not None:
            self._restore(payload)
        elif shards.main:
            self.metrics.truncate(0)

    def _restore(self, payload: Dict) -> None:
        """The trainer, the clock, the adapter and the metrics file's length of a checkpoint; RunError naming
        the checkpoint when its entries do not fit this run."""
        path = self.out / CHECKPOINT
        try:
            self.trainer.load_state_dict(payload["trainer"])
            self.elapsed = float(payload["elapsed"])
            if self.adapter is not None and payload.get("adapter") is not None:
                self.adapter.load_state_dict(payload["adapter"])
        except PAYLOAD_ERRORS as error:
            raise restore_failure(path, "trainer state", error) from None
        size = payload["metrics_bytes"]
        if self.shards.main:
            held = self.metrics.size()
            if size < 0 or (self.metrics.path.exists() and size > held):
                raise RunError(f"{path} records {size} bytes of {self.metrics.path.name}, which holds {held}: "
                               f"the run's files do not belong together")
            self.metrics.truncate(size)

    def save(self) -> None:
        if not self.shards.main:
            return
        payload = {"format": CHECKPOINT_FORMAT, "config": self.config.to_dict(),
                   "networks": asdict(self.trainer.networks), "trainer": self.trainer.state_dict(),
                   "elapsed": self.elapsed, "metrics_bytes": self.metrics.size(),
                   "adapter": self.adapter.state_dict() if self.adapter is not None else None}
        save_torch_atomically(payload, self.out / CHECKPOINT)

    def evaluate(self) -> Dict[str, float]:
        step = self.trainer.step_count
        result = self.evaluator(self.trainer.generator)
        images = generate(self.trainer.generator, self.grid_noise)
        save_grid(images, self.out / f"samples_{step:06d}.png")
        return result

    def record(self, evaluate: bool) -> Dict:
        trainer = self.trainer
        record = {"step": trainer.step_count, "lr": trainer.lr, "elapsed": round(self.elapsed, 3)}
        record.update(trainer.averages.pop())
        main = self.shards.main
        if evaluate and main:
            record.update(self.evaluate())
        if self.adapter is not None and self.adapter.due(trainer.step_count):
            fresh = trainer.noise(ADAPT_SAMPLES)  # on every rank: their generators stay alike
            if main:
                fake = embed_generator(trainer.generator, fresh, self.evaluator.features).features
                record.update(self.adapter.update(self.evaluator.real.features, fake, trainer.optimizers) or {})
            self._share_learning_rates()
        if not main:
            return record
        self.metrics.append(record)
        if evaluate:
            plot_kid_curve(read_metrics(self.metrics.path), self.out / "kid_curve.png",
                           f"{self.config.loss} on {self.config.dataset}")
        return record

    def _share_learning_rates(self) -> None:
        """Every rank takes rank 0's learning rates (its relative test may have decayed them)."""
        groups = [g for optimizer in self.trainer.optimizers for g in optimizer.param_groups]
        for group, lr in zip(groups, self.shards.broadcast([g["lr"] for g in groups])):
            group["lr"] = lr

    def loop(self, progress) -> bool:
        """Train to config.steps; False when stopped early by a signal (after a checkpoint)."""
        config, trainer = self.config, self.trainer
        if self.shards.main and trainer.step_count == 0 and self.metrics.size() == 0:
            record = self.record(evaluate=True)
            if "kid" in record:
                progress.set_postfix(kid=f"{record['kid']:.4g}")
        with _StopRequest() as stop:
            while trainer.step_count < config.steps:
                started = time.perf_counter()
                trainer.step()
                self.elapsed += time.perf_counter() - started
                step = trainer.step_count
                due_eval = step % config.eval_every == 0 or step == config.steps
                if due_eval or step % config.log_every == 0:
                    record = self.record(evaluate=due_eval)
                    if "kid" in record:
                        progress.set_postfix(kid=f"{record['kid']:.4g}")
                progress.update(1)
                if step % config.checkpoint_every == 0 or step == config.steps:
                    self.save()
                if self.shards.any(stop.requested):  # every rank stops at the same step
                    self.save()
                    return False
        return True


RESUMABLE = ("out", "steps", "device", "progress")


def _check_unchanged(given: TrainConfig, saved: TrainConfig) -> None:
    """A setting given on the command line (not its default) that differs from the checkpoint's is an error:
    a resumed run keeps its settings."""
    default = TrainConfig()
    changed = [f.name for f in fields(TrainConfig) if f.name not in RESUMABLE
               and getattr(given, f.name) != getattr(saved, f.name)
               and getattr(given, f.name) != getattr(default, f.name)]
    if changed:
        flags = ", ".join("--" + name.replace("_", "-") for name in changed)
        raise RunError(f"--resume continues the run with its own settings, but {flags} differ from its checkpoint's")


def _start(config: TrainConfig, resume: bool, shards: Shards) -> Run:
    out = Path(config.resolved_out())
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} is an existing file, not a folder; choose another --out")
    checkpoint = out / CHECKPOINT
    payload = None
    if checkpoint.exists():
        if not resume:
            raise RunError(f"{out} already holds a run ({CHECKPOINT}); pass --resume to continue it or choose "
                           f"another --out")
        payload = load_checkpoint(checkpoint, resuming=True)
        try:
            saved = TrainConfig.from_dict(payload["config"])
        except PAYLOAD_ERRORS as error:
            raise restore_failure(checkpoint, "config", error) from None
        _check_unchanged(config, saved)
        config = replace(saved, out=config.out, steps=config.steps, device=config.device, progress=config.progress)
    elif resume:
        raise RunError(f"--resume: {out} holds no {CHECKPOINT}; drop --resume to start a new run")
    if shards.main:
        try:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomically(out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
        except OSError as error:
            raise RunError(f"--out {out}: cannot write the run's folder ({one_line(error)})") from None
    return Run(config, payload, shards)


def train(config: TrainConfig, resume: bool = False, shards: Shards = SINGLE) -> Path:
    """Run (or resume) the training described by config (on this rank of `shards`); returns the output
    folder."""
    run = _start(config, resume, shards)
    from tqdm import tqdm

    with tqdm(total=run.config.steps, initial=run.trainer.step_count,
              disable=not (run.config.progress and shards.main),
              desc=run.config.loss, unit="step", file=sys.stderr) as progress:
        finished = run.loop(progress)
    if not finished and shards.main:
        print(f"stopped at step {run.trainer.step_count}; continue with --resume --out {run.out}", file=sys.stderr)
    return run.out


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(args)
    from gan.inception import InceptionWeightsError

    try:
        shards = shards_from_environment(config.device)
        out = train(config, resume=args.resume, shards=shards)
    except (DataError, RunError, InceptionWeightsError, FloatingPointError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    finally:
        close_process_group()
    if not shards.main:
        return 0
    last = [r for r in read_metrics(out / "metrics.jsonl") if "kid" in r]
    if last:
        print(f"step {last[-1]['step']}: KID {last[-1]['kid']:.4g} ± {last[-1]['kid_std']:.2g} "
              f"(step 0: {last[0]['kid']:.4g}); files in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
