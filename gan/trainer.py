"""One GAN training run's state and its updates: networks, optimisers, the random generator of batches and
noise, and the step count; `state_dict` / `load_state_dict` capture all of it, so that a run resumed from a
checkpoint makes exactly the updates the uninterrupted run would have made (same seed, same threads).
On several ranks (gan.sharding) each step uses this rank's rows of the global batch and noise."""
from __future__ import annotations

import math
from typing import Dict

import torch

from gan.config import TrainConfig
from gan.data import ImageData
from gan.global_batch_norm import globalize_batch_norm
from gan.losses import LossContext, get_loss
from gan.networks import NetworkConfig, build_critic, build_generator, sample_noise
from gan.recipes import SCALE_FORMS, recipe_for
from gan.sharding import SINGLE, Shards
from gan.spectral import power_iteration

__all__ = ["Trainer", "LossAverages"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _optimizer(recipe, params, lr: float) -> torch.optim.Optimizer:
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=recipe.betas)


def _clip_each_tensor(params, max_norm: float) -> None:
    """Scale each parameter's gradient to norm ≤ max_norm separately (per-tensor clipping of both reference
    codes, not the global norm)."""
    for p in params:
        if p.grad is not None:
            torch.nn.utils.clip_grad_norm_([p], max_norm)


class LossAverages:
    """Running means of the logged losses since the last metrics line."""

    def __init__(self):
        self.sums: Dict[str, float] = {}
        self.counts: Dict[str, int] = {}

    def add(self, logs: Dict[str, float]) -> None:
        for key, value in logs.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def pop(self) -> Dict[str, float]:
        means = {key: self.sums[key] / self.counts[key] for key in self.sums}
        self.sums, self.counts = {}, {}
        return means

    def state_dict(self) -> Dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}

    def load_state_dict(self, state: Dict) -> None:
        self.sums, self.counts = dict(state["sums"]), dict(state["counts"])


class Trainer:
    """Generator and critic of `config` for images like data's, on `device`. `step()` makes one generator
    update after its critic updates; `step_count` counts generator updates. `generator` and `critic` are
    the networks themselves (evaluation, checkpoints); the updates go through their DDP wrappers on
    several ranks."""

    def __init__(self, config: TrainConfig, data: ImageData, device: torch.device, shards: Shards = SINGLE):
        self.config, self.data, self.device, self.shards = config, data, device, shards
        self.dtype = DTYPES[config.dtype]
        self.recipe = recipe_for(config.loss)
        torch.manual_seed(config.seed)
        self.networks = NetworkConfig(architecture=config.architecture, channels=data.channels,
                                      width=config.resolved_width(), z_dim=config.z_dim,
                                      critic_out=self.recipe.critic_out, constraint=self.recipe.constraint,
                                      init=self.recipe.init)
        generator = build_generator(self.networks)
        if shards.distributed:
            generator = globalize_batch_norm(generator, shards.group)
        self.generator = generator.to(device, self.dtype)
        self.critic = build_critic(self.networks).to(device, self.dtype)
        self._training_generator = shards.wrap(self.generator, device)
        self._training_critic = shards.wrap(self.critic, device)
        lr = config.lr if config.lr is not None else self.recipe.lr
        self.generator_optimizer = _optimizer(self.recipe, self.generator.parameters(), lr)
        self.critic_optimizer = _optimizer(self.recipe, self.critic.parameters(), lr)
        self.rng = torch.Generator().manual_seed(config.seed)
        self.loss = get_loss(config.loss)
        self.context = LossContext(kernel=self.recipe.kernel, scale=SCALE_FORMS[config.smmd_scale],
                                   penalty=self.recipe.penalty, l2_penalty=self.recipe.l2_penalty,
                                   backend=config.mmd_backend, rng=self.rng, shards=shards)
        self.step_count = 0
        self.averages = LossAverages()

    @property
    def optimizers(self):
        return (self.generator_optimizer, self.critic_optimizer)

    @property
    def lr(self) -> float:
        return self.generator_optimizer.param_groups[0]["lr"]

    def noise(self, n: int) -> torch.Tensor:
        """z ~ U(−1, 1)^(n, z_dim), drawn on the CPU from the run's generator."""
        return sample_noise(n, self.config.z_dim, self.rng, self.dtype).to(self.device)

    def real_batch(self) -> torch.Tensor:
        """This rank's rows of a global batch of world × batch_size images (all of them on one rank)."""
        count = min(self.config.batch_size * self.shards.world, len(self.data))
        indices = torch.randperm(len(self.data), generator=self.rng)[:count]
        return self.data.batch(self.shards.take(indices)).to(self.device, self.dtype)

    def batch_noise(self, n: int) -> torch.Tensor:
        """This rank's rows of the noise of a global batch of world × n (drawn alike on every rank)."""
        return self.shards.take(self.noise(n * self.shards.world))

    def critic_steps(self) -> int:
        if self.config.critic_steps is not None:
            return self.config.critic_steps
        return self.recipe.schedule.at(self.step_count)

    def _logs(self, role: str, loss: torch.Tensor, logs: Dict[str, float]) -> Dict[str, float]:
        """The update's loss and logs, averaged over the ranks: a loss that is not finite on any rank makes
        the mean not finite, so every rank raises the FloatingPointError together."""
        logs = self.shards.mean({f"{role}_loss": float(loss.detach()), **{f"{role}_{k}": v for k, v in logs.items()}})
        if not math.isfinite(logs[f"{role}_loss"]):
            raise FloatingPointError(f"the {self.config.loss} loss became {logs[f'{role}_loss']} at generator "
                                     f"step {self.step_count}; try a lower --lr")
        return logs

    def _refresh_spectral_estimates(self) -> None:
        """The scaled spectral parametrization advances its power iteration once per update, before the
        update's critic passes (the reference iterates in the real batch's pass and stores u)."""
        if self.recipe.constraint == "spectral-scaled":
            power_iteration(self.critic)

    def _update(self, optimizer, params, loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.recipe.grad_clip is not None:
            _clip_each_tensor(params, self.recipe.grad_clip)
        optimizer.step()

    def _critic_update(self) -> None:
        real = self.real_batch()
        with torch.no_grad():
            fake = self.generator(self.batch_noise(real.shape[0]))
        self._refresh_spectral_estimates()
        loss, logs = self.loss.critic_loss(self._training_critic, real, fake, self.context)
        logs = self._logs("critic", loss, logs)
        self._update(self.critic_optimizer, list(self.critic.parameters()), loss)
        if self.recipe.weight_clip is not None:
            with torch.no_grad():
                for p in self.critic.parameters():
                    p.clamp_(-self.recipe.weight_clip, self.recipe.weight_clip)
        self.averages.add(logs)

    def _generator_update(self) -> None:
        real = self.real_batch()
        fake = self._training_generator(self.batch_noise(real.shape[0]))
        self._refresh_spectral_estimates()
        self.critic.requires_grad_(False)
        try:
            loss, logs = self.loss.generator_loss(self.critic, real, fake, self.context)
            logs = self._logs("generator", loss, logs)
            self._update(self.generator_optimizer, list(self.generator.parameters()), loss)
        finally:
            self.critic.requires_grad_(True)
        self.averages.add(logs)

    def step(self) -> None:
        for _ in range(self.critic_steps()):
            self._critic_update()
        self._generator_update()
        self.step_count += 1

    def state_dict(self) -> Dict:
        return {"step": self.step_count, "generator": self.generator.state_dict(),
                "critic": self.critic.state_dict(),
                "generator_optimizer": self.generator_optimizer.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict(), "rng": self.rng.get_state(),
                "averages": self.averages.state_dict()}

    def load_state_dict(self, state: Dict) -> None:
        self.step_count = int(state["step"])
        self.generator.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        self.generator_optimizer.load_state_dict(state["generator_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.rng.set_state(state["rng"])
        self.averages.load_state_dict(state["averages"])
