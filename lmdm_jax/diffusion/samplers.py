"""Per-step updates of the Euler and ping-pong samplers, with CFG variants.

Each update takes the model's conditional and unconditional velocities at
level t and returns the sample at t_next. Guidance:

- plain CFG: v = v_u + w (v_c - v_u), optionally rescaled (`rescale` phi,
  stable-audio-tools' `scale_phi`: match the per-frame std over channels of
  the conditional prediction).
- CFG++ (`plus_plus`): guide x0 with weight w in [0, 1] and re-noise around
  the *unconditional* prediction: Euler x' = x0_g + t' v_u; ping-pong
  x' = x0_g + t' (eps - x0_u) (the paper's Ping-Pong++, w = 0.7).

Shapes: x, v_c, v_u [B,N,C]; t, t_next scalars; w, rescale scalars or [B].
"""
from __future__ import annotations

import jax.numpy as jnp

SAMPLERS = ("euler", "pingpong")


def _b(a, like):
  a = jnp.asarray(a, jnp.float32)
  return a.reshape(-1, *([1] * (like.ndim - 1))) if a.ndim else a


def cfg_velocity(v_c, v_u, scale, rescale=0.0):
  """Classifier-free guided velocity with optional std rescale."""
  scale, rescale = _b(scale, v_c), _b(rescale, v_c)
  v = v_u + scale * (v_c - v_u)
  std_c = jnp.std(v_c, axis=-1, ddof=1, keepdims=True)
  std_g = jnp.std(v, axis=-1, ddof=1, keepdims=True)
  rescaled = v * (std_c / jnp.maximum(std_g, 1e-12))
  return rescale * rescaled + (1.0 - rescale) * v


def step(kind: str, x, v_c, v_u, t, t_next, eps=None, scale=1.0,
         rescale=0.0, plus_plus: bool = False):
  """One sampler update; returns (x_next, x0_estimate).

  With v_u None (no CFG branch) guidance is off. `eps` is fresh noise for
  ping-pong (ignored by Euler).
  """
  if kind not in SAMPLERS:
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
  if v_u is None:
    v = v_c
    x0 = x - t * v
    if kind == "euler":
      return x + (t_next - t) * v, x0
    return (1.0 - t_next) * x0 + t_next * eps, x0
  if plus_plus:
    x0_c, x0_u = x - t * v_c, x - t * v_u
    w = _b(scale, x)
    x0 = x0_u + w * (x0_c - x0_u)
    if kind == "euler":
      return x0 + t_next * v_u, x0
    return x0 + t_next * (eps - x0_u), x0
  v = cfg_velocity(v_c, v_u, scale, rescale)
  x0 = x - t * v
  if kind == "euler":
    return x + (t_next - t) * v, x0
  return (1.0 - t_next) * x0 + t_next * eps, x0
