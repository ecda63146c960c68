"""Rectified flow: x_t = (1 - t) x0 + t eps, the model predicts v = eps - x0.

t = 1 is pure noise and t = 0 clean data, as in stable-audio-tools.
Sampling schedules are small objects (`LogSNR`, `Linear`) giving the
levels t_0 = 1 > ... > t_K = 0 of K steps.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


def noise(x0, eps, t):
  """x_t for data x0 [B,N,C], noise eps and levels t [B] (or scalar)."""
  t = jnp.asarray(t, jnp.float32).reshape(-1, *([1] * (x0.ndim - 1)))
  return (1.0 - t) * x0 + t * eps


def denoised(x_t, v, t):
  """x0 estimate x_t - t v."""
  t = jnp.asarray(t, jnp.float32).reshape(-1, *([1] * (x_t.ndim - 1)))
  return x_t - t * v


@dataclasses.dataclass(frozen=True)
class LogSNR:
  """The paper's sampling schedule: t_i = sigmoid(-lambda_i) with lambda
  linear in i from logsnr_min to logsnr_max; t_0 = 1 and t_K = 0."""
  logsnr_min: float = -6.0
  logsnr_max: float = 2.0
  name = "logsnr"

  def levels(self, steps: int) -> np.ndarray:
    """steps + 1 float32 levels from t_0 = 1 down to t_K = 0."""
    if steps < 1:
      raise ValueError(f"steps must be >= 1, got {steps}")
    lam = np.linspace(self.logsnr_min, self.logsnr_max, steps + 1)
    t = 1.0 / (1.0 + np.exp(lam))
    t[0], t[-1] = 1.0, 0.0
    return t.astype(np.float32)

  def traced_levels(self, k, k_max: int):
    """The same levels for a traced step count k (ARC-Forcing's rollouts
    draw k per block): [k_max + 1], t_0 = 1, t_i = 0 for i >= k."""
    i = jnp.arange(k_max + 1, dtype=jnp.float32)
    lam = self.logsnr_min + (self.logsnr_max - self.logsnr_min) * i / \
        k.astype(jnp.float32)
    t = jax.nn.sigmoid(-lam)
    t = jnp.where(i == 0, 1.0, t)
    return jnp.where(i >= k, 0.0, t)


@dataclasses.dataclass(frozen=True)
class Linear:
  """Uniform levels 1 -> 0."""
  name = "linear"

  def levels(self, steps: int) -> np.ndarray:
    if steps < 1:
      raise ValueError(f"steps must be >= 1, got {steps}")
    return np.linspace(1.0, 0.0, steps + 1).astype(np.float32)


SCHEDULES = {"logsnr": LogSNR(), "linear": Linear()}


def logsnr_schedule(steps: int, logsnr_min: float = -6.0,
                    logsnr_max: float = 2.0) -> np.ndarray:
  """`LogSNR(logsnr_min, logsnr_max).levels(steps)`."""
  return LogSNR(logsnr_min, logsnr_max).levels(steps)


def linear_schedule(steps: int) -> np.ndarray:
  return Linear().levels(steps)


def schedule(name: str, steps: int) -> np.ndarray:
  """Levels of the named schedule (the name a StreamSpec stores)."""
  if name not in SCHEDULES:
    raise ValueError(f"unknown schedule {name!r}; known: {sorted(SCHEDULES)}")
  return SCHEDULES[name].levels(steps)
