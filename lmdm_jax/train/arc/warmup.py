"""Discriminator warm-up: the base (bidirectional) DiT trained with the
flow-matching loss on long windows (paper: 768 frames), before ARC-Forcing.

The discriminator's backbone is this model run to layer L, so it has to
know whole windows of real music, not only the LMDM's s + o; the warm-up
gives it that. Every frame of a window is noised with one t and predicted
(no context, no input-add path, full attention); text tokens are dropped
with `cfg_dropout`. It runs on stage 1's data-parallel step and loop
(`objective = "base"` in the config): `lmdm train --config
configs/disc_warmup.py`.

Shapes: latents [B, N, C], cross_tokens [B, L, Dc], global_cond [B, G].
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lmdm_jax.configs import dit_config
from lmdm_jax.diffusion import flow
from lmdm_jax.model.config import DiTConfig
from lmdm_jax.model.dit import DiT
from lmdm_jax.model.masks import full_mask
from lmdm_jax.train import state as train_state
from lmdm_jax.train import timesteps


@dataclasses.dataclass(frozen=True)
class BaseSpec:
  """Static description of the base objective (hashable)."""
  model: DiTConfig
  window: int
  cfg_dropout: float = 0.1
  sampler: str = "uniform"
  logit_mean: float = 0.0
  logit_std: float = 1.0
  logsnr_min: float = -6.0
  logsnr_max: float = 2.0

  def __post_init__(self):
    if self.model.input_add_dim:
      raise ValueError("the base model has no input-add path: set "
                       "model.input_add_dim = 0")
    if self.window < 1:
      raise ValueError(f"window must be positive, got {self.window}")
    if not 0.0 <= self.cfg_dropout <= 1.0:
      raise ValueError(f"cfg_dropout must be in [0, 1], got "
                       f"{self.cfg_dropout}")
    if self.sampler not in timesteps.SAMPLERS:
      raise ValueError(f"unknown timestep sampler {self.sampler!r}")

  @classmethod
  def from_config(cls, cfg) -> "BaseSpec":
    l = cfg.loss
    return cls(dit_config(cfg), int(cfg.data.window),
               float(l.cfg_dropout), str(l.sampler), float(l.logit_mean),
               float(l.logit_std), float(l.logsnr_min), float(l.logsnr_max))

  def loss(self, params, batch: dict, keys):
    """Mean flow-matching loss over every frame; keys [B] per example.
    Returns (loss [], per-example losses [B])."""
    x0 = batch["latents"]
    m = self.model

    def draw(key):
      k_t, k_eps, k_txt = jax.random.split(key, 3)
      t = timesteps.sample(k_t, 1, self.sampler, mean=self.logit_mean,
                           std=self.logit_std, logsnr_min=self.logsnr_min,
                           logsnr_max=self.logsnr_max)[0]
      eps = jax.random.normal(k_eps, x0.shape[1:])
      text = (jax.random.uniform(k_txt) >= self.cfg_dropout).astype(
          jnp.float32)
      return t, eps, text

    t, eps, text = jax.vmap(draw)(keys)
    x_t = flow.noise(x0, eps, t)
    cross = (batch["cross_tokens"] * text[:, None, None]
             if m.cond_token_dim else None)
    glob = batch["global_cond"] if m.global_cond_dim else None
    n = x0.shape[1]
    v = DiT(m).apply({"params": params}, x_t, t, cross, glob, None, None,
                     full_mask(n))
    err = jnp.square(v.astype(jnp.float32) - (eps - x0)).mean(axis=(1, 2))
    return err.mean(), err

  def merge_initial(self, fresh, loaded, log=print):
    """Starting parameters: a base model may start from an LMDM, whose
    input-add path it lacks and drops."""
    return train_state.backbone_from(fresh, loaded, log)
