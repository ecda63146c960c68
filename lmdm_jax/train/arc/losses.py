"""ARC losses (paper Eq. 6-7; signs as in the paper's code).

With per-frame discriminator logits on the same noised (t, eps) pair:

  discriminator  L_R = mean softplus(D(fake) - D(real))
                 L_C = mean softplus(D(real, P(c)) - D(real, c))   (contrastive)
  generator      L_G = mean softplus(D(real) - D(fake))

P(c) rolls the prompts by one position within the batch. The softplus is
taken per frame, then averaged over frames and batch.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def relativistic_d(d_real, d_fake):
  return jnp.mean(jax.nn.softplus(d_fake - d_real))


def relativistic_g(d_real, d_fake):
  return jnp.mean(jax.nn.softplus(d_real - d_fake))


def contrastive_d(d_real, d_real_wrong):
  return jnp.mean(jax.nn.softplus(d_real_wrong - d_real))


def contrastive_accuracy(d_real, d_real_wrong):
  """Share of examples whose matched prompt scores above the wrong one."""
  axes = tuple(range(1, d_real.ndim))
  return jnp.mean(jnp.mean(d_real, axes) > jnp.mean(d_real_wrong, axes))


def permute_prompts(x):
  """P(c): every example gets the next example's conditioning."""
  return jnp.roll(x, 1, axis=0)


def approx_r1(d_fn, x, sigma: float, key):
  """Noise-perturbation estimate of the R1/R2 gradient penalty:
  mean (D(x + sigma n) - D(x))^2 / sigma^2."""
  noise = jax.random.normal(key, x.shape) * sigma
  return jnp.mean(jnp.square(d_fn(x + noise) - d_fn(x))) / sigma ** 2
