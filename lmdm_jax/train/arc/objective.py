"""ARC-Forcing's objective: the spec, the rollouts and both players' losses.

A (micro)batch holds real latents [B, s + R * o, C] (the first s frames
are the rollout's starting context, before context dropout), cross_tokens
[B, L, Dc] and global_cond [B, G]. The generator (a stage-1 LMDM) rolls out
R blocks from each example's dropped-out context on the inference stream's
own functions (`arc.rollout`); both sequences are noised with the same t
and the same eps and the discriminator scores the R * o rollout frames.

Every random draw that differs between examples is keyed by that example's
own key (keys [B], folded from its global index by the trainer), and the
rollout's step counts [R] are given, shared by the whole global batch: so
a batch split over N devices or M microbatches computes the same losses as
one. `lmdm_jax/train/arc/train.py` runs these under `shard_map`;
`benchmarks/arc_memory.py` compiles the trainer's steps around them.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from lmdm_jax.train.arc import losses
from lmdm_jax.train.arc.discriminator import Discriminator, DiscriminatorConfig
from lmdm_jax.train.arc.rollout import rollout
from lmdm_jax.diffusion import flow
from lmdm_jax.streaming.state import Controls, StreamSpec
from lmdm_jax.train import finetune


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



@dataclasses.dataclass(frozen=True)
class ARCSpec:
  """Static description of the objective (hashable: closed over by jit).

  stream: the generator's stream with batch 1 (rollouts are vmapped over
    examples so each has its own noise), K = k_max, no CFG, ping-pong.
  disc: the discriminator. arc: rollout and loss settings.
  p_uncond, p_partial, max_partial_chunks: rollout context dropout.
  text_dropout: probability that an example's rollout prompt is zeroed.
  """
  stream: StreamSpec
  disc: DiscriminatorConfig
  arc: ARCConfig
  p_uncond: float = 0.25
  p_partial: float = 0.1
  max_partial_chunks: int = 4
  text_dropout: float = 0.0
  r1_weight: float = 0.0
  r2_weight: float = 0.0
  penalty_sigma: float = 0.01

  @property
  def window(self) -> int:
    g = self.stream.geometry
    return g.context + self.arc.blocks * g.block

  @classmethod
  def from_config(cls, cfg) -> "ARCSpec":
    from lmdm_jax.configs import dit_config, geometry
    model, geo = dit_config(cfg), geometry(cfg)
    a, d = cfg.arc, cfg.disc
    if geo.mode not in ("bc", "ed"):
      raise ValueError(f"ARC-Forcing post-trains an ED or BC LMDM; "
                       f"geometry.mode is {geo.mode!r}")
    if not 1 <= int(a.k_min) <= int(a.k_max):
      raise ValueError(f"need 1 <= arc.k_min <= arc.k_max, got "
                       f"{a.k_min}, {a.k_max}")
    chunks = geo.context // geo.block
    if float(a.p_partial) and not 1 <= int(a.max_partial_chunks) <= chunks:
      raise ValueError(f"arc.max_partial_chunks must be in [1, {chunks}]")
    stream = StreamSpec(model, geo, batch=1, cond_tokens=int(cfg.cond_tokens),
                        steps=int(a.k_max), sampler="pingpong", cfg=False,
                        min_query_rows=0)
    disc = DiscriminatorConfig(
        backbone=dataclasses.replace(model, input_add_dim=0),
        exit_layer=int(d.exit_layer), channels=int(d.channels),
        strides=tuple(d.strides), mults=tuple(d.mults),
        blocks=tuple(d.blocks))
    arc = ARCConfig(blocks=int(a.blocks), k_min=int(a.k_min),
                    k_max=int(a.k_max),
                    contrastive_weight=float(a.contrastive_weight),
                    t_sampler=str(a.t_sampler))
    spec = cls(stream, disc, arc, float(a.p_uncond), float(a.p_partial),
               int(a.max_partial_chunks), float(a.text_dropout),
               float(a.get("r1_weight", 0.0)), float(a.get("r2_weight", 0.0)),
               float(a.get("penalty_sigma", 0.01)))
    if (spec.window - geo.context) % disc.downsampling:
      raise ValueError(f"rollout length R * o = {spec.window - geo.context} "
                       f"must be a multiple of the head's downsampling "
                       f"{disc.downsampling}")
    if int(cfg.data.window) != spec.window:
      raise ValueError(f"data.window {cfg.data.window} must be s + R * o = "
                       f"{spec.window}")
    return spec


# -- the losses ----------------------------------------------------------
def _draw_context(spec: ARCSpec, key, context):
  """Rollout context dropout of one example (stage 1's outpainting
  dropout with the ARC probabilities): context [s, C] -> [s, C]."""
  k_mode, k_n = jax.random.split(key)
  keep = finetune.context_keep(k_mode, k_n, spec.stream.geometry,
                               spec.p_uncond, spec.p_partial,
                               spec.max_partial_chunks)
  return context * keep[:, None]


def _glob(spec: ARCSpec, batch):
  return batch["global_cond"] if spec.stream.model.global_cond_dim else None


def _rollouts(params_g, spec: ARCSpec, batch, keys, steps):
  """Per-example rollouts: -> (real [B, N, C] with the dropped-out
  context, fake [B, N, C] = [same context | R generated blocks])."""
  s = spec.stream.geometry.context

  def one(latents, cross, glob, key):
    k_ctx, k_txt, k_seed = jax.random.split(key, 3)
    context = _draw_context(spec, k_ctx, latents[:s])
    keep = jax.random.uniform(k_txt) >= spec.text_dropout
    controls = Controls(cross_tokens=(cross * keep)[None],
                        global_cond=glob[None], cfg_scale=jnp.float32(1.0),
                        rescale=jnp.float32(0.0),
                        seed=jax.random.randint(k_seed, (), 0, 2**30))
    fake, _ = rollout(params_g, spec.stream, context[None], controls, steps,
                      spec.arc.k_max)
    return (jnp.concatenate([context, latents[s:]], 0),
            jnp.concatenate([context, fake[0]], 0))

  return jax.vmap(one)(batch["latents"], batch["cross_tokens"],
                       batch["global_cond"], keys)


def _noise(spec: ARCSpec, keys, shape):
  """Per-example discriminator noise level t [B] and eps [B, N, C]."""
  def one(key):
    k_t, k_eps = jax.random.split(jax.random.fold_in(key, 7))
    return (sample_t(k_t, 1, spec.arc.t_sampler)[0],
            jax.random.normal(k_eps, shape[1:]))
  return jax.vmap(one)(keys)


def _scores(params_d, spec: ARCSpec, x, t, eps, cross, glob):
  return _scores_noised(params_d, spec, flow.noise(x, eps, t), t, cross, glob)


def _scores_noised(params_d, spec: ARCSpec, x_t, t, cross, glob):
  return Discriminator(spec.disc).apply(
      {"params": params_d}, x_t, t, cross, glob,
      spec.stream.geometry.context)


def _penalty(params_d, spec: ARCSpec, x, t, eps, cross, glob, keys, salt):
  """Approximate R1 (on real) / R2 (on fake) gradient penalty: mean
  (D(x_t + sigma n) - D(x_t))^2 / sigma^2, the discriminator's sensitivity
  to a small perturbation of its input (`losses.approx_r1`, with the
  perturbation drawn per example so any device count draws the same)."""
  x_t = flow.noise(x, eps, t)
  sigma = spec.penalty_sigma
  n = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, salt),
                                           x.shape[1:]))(keys)
  d0 = _scores_noised(params_d, spec, x_t, t, cross, glob)
  d1 = _scores_noised(params_d, spec, x_t + sigma * n, t, cross, glob)
  return jnp.mean(jnp.square(d1 - d0)) / sigma ** 2


def generator_loss(params_g, params_d, spec: ARCSpec, batch, keys, steps):
  """mean softplus(D(real) - D(fake)) of a (micro)batch with per-example
  keys [B]; the discriminator is a constant here."""
  real, fake = _rollouts(params_g, spec, batch, keys, steps)
  t, eps = _noise(spec, keys, real.shape)
  params_d = jax.lax.stop_gradient(params_d)
  glob = _glob(spec, batch)
  d_real = _scores(params_d, spec, real, t, eps, batch["cross_tokens"], glob)
  d_fake = _scores(params_d, spec, fake, t, eps, batch["cross_tokens"], glob)
  loss = losses.relativistic_g(d_real, d_fake)
  return loss, {"loss": loss, "gap": jnp.mean(d_real - d_fake)}


def discriminator_loss(params_d, params_g, spec: ARCSpec, batch, keys,
                       steps):
  """Relativistic + weighted contrastive loss; batch["wrong_tokens"] holds
  each example's permuted prompt, P(c)."""
  real, fake = _rollouts(jax.lax.stop_gradient(params_g), spec, batch, keys,
                         steps)
  fake = jax.lax.stop_gradient(fake)
  t, eps = _noise(spec, keys, real.shape)
  cross, glob = batch["cross_tokens"], _glob(spec, batch)
  d_real = _scores(params_d, spec, real, t, eps, cross, glob)
  d_fake = _scores(params_d, spec, fake, t, eps, cross, glob)
  d_wrong = _scores(params_d, spec, real, t, eps, batch["wrong_tokens"],
                    glob)
  l_r = losses.relativistic_d(d_real, d_fake)
  l_c = losses.contrastive_d(d_real, d_wrong)
  loss = l_r + spec.arc.contrastive_weight * l_c
  aux = {"relativistic": l_r, "contrastive": l_c,
         "gap": jnp.mean(d_real - d_fake),
         "contrastive_accuracy": losses.contrastive_accuracy(d_real,
                                                             d_wrong)}
  if spec.r1_weight:
    aux["r1"] = _penalty(params_d, spec, real, t, eps, cross, glob, keys, 11)
    loss = loss + spec.r1_weight * aux["r1"]
  if spec.r2_weight:
    aux["r2"] = _penalty(params_d, spec, fake, t, eps, cross, glob, keys, 12)
    loss = loss + spec.r2_weight * aux["r2"]
  return loss, {"loss": loss, **aux}
