"""Rectified flow: x_t = (1 - t) x0 + t eps, the model predicts v = eps - x0.

t = 1 is pure noise and t = 0 clean data, as in stable-audio-tools.
"""
from __future__ import annotations

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


def logsnr_schedule(steps: int, logsnr_min: float = -6.0,
                    logsnr_max: float = 2.0) -> np.ndarray:
  """The paper's sampling schedule: t_i = sigmoid(-lambda_i), ends 1 and 0.

  lambda = linspace(logsnr_min, logsnr_max, steps + 1); returns steps + 1
  float32 levels from t_0 = 1 down to t_K = 0.
  """
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}")
  lam = np.linspace(logsnr_min, logsnr_max, steps + 1)
  t = 1.0 / (1.0 + np.exp(lam))
  t[0], t[-1] = 1.0, 0.0
  return t.astype(np.float32)


def linear_schedule(steps: int) -> np.ndarray:
  """Uniform levels 1 -> 0 (steps + 1 values)."""
  if steps < 1:
    raise ValueError(f"steps must be >= 1, got {steps}")
  return np.linspace(1.0, 0.0, steps + 1).astype(np.float32)


SCHEDULES = {"logsnr": logsnr_schedule, "linear": linear_schedule}


def schedule(name: str, steps: int) -> np.ndarray:
  if name not in SCHEDULES:
    raise ValueError(f"unknown schedule {name!r}; known: {sorted(SCHEDULES)}")
  return SCHEDULES[name](steps)
