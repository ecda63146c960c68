"""Training noise-level samplers t ~ p(t) in (0, 1) (t = 1 is pure noise).

Samplers draw one level per example ([B]); `shift` then applies the
length-dependent time shift that Stable Audio Open uses for its
`distribution_shift_options` (Flux-style: mu grows linearly with the
sequence length from `base_shift` at `min_length` frames to `max_shift` at
`max_length`, and t -> e^mu / (e^mu + 1/t - 1)), which moves mass towards
noisier levels for longer sequences.

  uniform         t ~ U(0, 1)                          (the trainer default)
  logit_normal    t = sigmoid(m + s z), z ~ N(0, 1)     (SD3)
  logsnr_uniform  t = sigmoid(-lambda), lambda ~ U(logsnr_min, logsnr_max)
                  (uniform over the paper's sampling logSNR range)
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

SAMPLERS = ("uniform", "logit_normal", "logsnr_uniform")
_EPS = 1e-5


def sample(key, batch: int, name: str = "uniform", *, mean: float = 0.0,
           std: float = 1.0, logsnr_min: float = -6.0,
           logsnr_max: float = 2.0) -> jnp.ndarray:
  """Draws [batch] float32 noise levels in [eps, 1 - eps]."""
  if name == "uniform":
    t = jax.random.uniform(key, (batch,))
  elif name == "logit_normal":
    if std <= 0:
      raise ValueError(f"logit_normal needs std > 0, got {std}")
    t = jax.nn.sigmoid(mean + std * jax.random.normal(key, (batch,)))
  elif name == "logsnr_uniform":
    if logsnr_min >= logsnr_max:
      raise ValueError(f"logsnr_min ({logsnr_min}) must be < logsnr_max "
                       f"({logsnr_max})")
    lam = jax.random.uniform(key, (batch,), minval=logsnr_min,
                             maxval=logsnr_max)
    t = jax.nn.sigmoid(-lam)
  else:
    raise ValueError(f"unknown timestep sampler {name!r}; known: {SAMPLERS}")
  return jnp.clip(t, _EPS, 1.0 - _EPS)


def shift_mu(seq_len: int, min_length: int = 256, max_length: int = 4096,
             base_shift: float = 0.5, max_shift: float = 1.15) -> float:
  """Shift parameter mu, linear in the sequence length (host float)."""
  if max_length <= min_length:
    raise ValueError(f"max_length ({max_length}) must exceed min_length "
                     f"({min_length})")
  slope = (max_shift - base_shift) / (max_length - min_length)
  return base_shift + slope * (seq_len - min_length)


def shift(t, seq_len: int, **kw) -> jnp.ndarray:
  """Length-dependent time shift of levels t [B] (monotone, keeps 0 and 1)."""
  e = math.exp(shift_mu(seq_len, **kw))
  t = jnp.clip(t, _EPS, 1.0 - _EPS)
  return e / (e + (1.0 / t - 1.0))
