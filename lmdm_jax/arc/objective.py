"""ARC-Forcing objectives: one generator loss and one discriminator loss.

Both are pure functions of (generator params, discriminator params, batch,
rng) so the stage-1 data-parallel machinery can run them (alternating
updates, separate optimisers). A batch holds real latents
[B, s + R * o, C] (the first s frames are the rollout's starting context,
already through context dropout), cross_tokens [B, L, Dc] and global_cond
[B, G]. Both sequences are noised with the same t and the same eps; the
discriminator scores the R * o rollout frames.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lmdm_jax.arc import losses
from lmdm_jax.arc.discriminator import Discriminator, DiscriminatorConfig
from lmdm_jax.arc.rollout import rollout, sample_steps
from lmdm_jax.diffusion import flow
from lmdm_jax.streaming.state import Controls, StreamSpec


@dataclasses.dataclass(frozen=True)
class ARCConfig:
  """Static settings (paper code defaults in brackets)."""
  blocks: int = 12                  # rollout blocks R [12]
  k_min: int = 1                    # steps per block ~ U{k_min..k_max}
  k_max: int = 5                    # [1..5 of a 6-step schedule]
  contrastive_weight: float = 2.0   # lambda [paper 1, BC code 2]
  t_sampler: str = "logsnr_uniform"  # or "logit_normal"


def sample_t(key, batch: int, kind: str):
  """Discriminator noise levels: logSNR-uniform t = sigmoid(-u), u in
  [-6, 2], or logit-normal."""
  if kind == "logsnr_uniform":
    u = jax.random.uniform(key, (batch,), minval=-6.0, maxval=2.0)
    return jax.nn.sigmoid(-u)
  if kind == "logit_normal":
    return jax.nn.sigmoid(jax.random.normal(key, (batch,)))
  raise ValueError(f"unknown t sampler {kind!r}")


def _generate(params_g, spec: StreamSpec, cfg: ARCConfig, batch, key):
  s = spec.geometry.context
  controls = Controls(cross_tokens=batch["cross_tokens"],
                      global_cond=batch["global_cond"],
                      cfg_scale=jnp.float32(1.0), rescale=jnp.float32(0.0),
                      seed=jax.random.randint(key, (), 0, 2**30))
  steps = sample_steps(jax.random.fold_in(key, 1), cfg.blocks, cfg.k_min,
                       cfg.k_max)
  fake, _ = rollout(params_g, spec, batch["latents"][:, :s], controls, steps,
                    cfg.k_max)
  return jnp.concatenate([batch["latents"][:, :s], fake], axis=1), steps


def _scores(params_d, dcfg: DiscriminatorConfig, x, t, eps, cross, glob,
            start):
  x_t = flow.noise(x, eps, t)
  return Discriminator(dcfg).apply({"params": params_d}, x_t, t, cross,
                                   glob, start)


def generator_loss(params_g, params_d, spec: StreamSpec,
                   dcfg: DiscriminatorConfig, cfg: ARCConfig, batch, key):
  """mean softplus(D(real) - D(fake)); gradient only into params_g."""
  k_roll, k_t, k_eps = jax.random.split(key, 3)
  fake, steps = _generate(params_g, spec, cfg, batch, k_roll)
  real = batch["latents"]
  t = sample_t(k_t, real.shape[0], cfg.t_sampler)
  eps = jax.random.normal(k_eps, real.shape)
  params_d = jax.lax.stop_gradient(params_d)
  s = spec.geometry.context
  d_real = _scores(params_d, dcfg, real, t, eps, batch["cross_tokens"],
                   batch["global_cond"], s)
  d_fake = _scores(params_d, dcfg, fake, t, eps, batch["cross_tokens"],
                   batch["global_cond"], s)
  loss = losses.relativistic_g(d_real, d_fake)
  return loss, {"g_loss": loss, "gap": jnp.mean(d_real - d_fake),
                "steps_hist": jnp.bincount(steps, length=cfg.k_max + 1)}


def discriminator_loss(params_d, params_g, spec: StreamSpec,
                       dcfg: DiscriminatorConfig, cfg: ARCConfig, batch, key):
  """Relativistic + contrastive loss; the rollout is a constant here."""
  k_roll, k_t, k_eps = jax.random.split(key, 3)
  fake, _ = _generate(jax.lax.stop_gradient(params_g), spec, cfg, batch,
                      k_roll)
  fake = jax.lax.stop_gradient(fake)
  real = batch["latents"]
  t = sample_t(k_t, real.shape[0], cfg.t_sampler)
  eps = jax.random.normal(k_eps, real.shape)
  s = spec.geometry.context
  cross, glob = batch["cross_tokens"], batch["global_cond"]
  d_real = _scores(params_d, dcfg, real, t, eps, cross, glob, s)
  d_fake = _scores(params_d, dcfg, fake, t, eps, cross, glob, s)
  d_wrong = _scores(params_d, dcfg, real, t, eps,
                    losses.permute_prompts(cross), glob, s)
  l_r = losses.relativistic_d(d_real, d_fake)
  l_c = losses.contrastive_d(d_real, d_wrong)
  loss = l_r + cfg.contrastive_weight * l_c
  return loss, {"d_loss": loss, "relativistic": l_r, "contrastive": l_c,
                "gap": jnp.mean(d_real - d_fake),
                "contrastive_accuracy": losses.contrastive_accuracy(d_real,
                                                                    d_wrong)}
