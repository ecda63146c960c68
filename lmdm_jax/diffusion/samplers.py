"""Per-step updates of the Euler and ping-pong samplers, with CFG variants.

Each update takes the model's conditional and unconditional velocities at
level t and returns the sample at t_next. Guidance:

- plain CFG: v = v_u + w (v_c - v_u), optionally rescaled (`rescale` phi,
  stable-audio-tools' `scale_phi`: match the per-frame std over channels of
  the conditional prediction).
- CFG++ (`plus_plus`): guide x0 with weight w in [0, 1] and re-noise around
  the *unconditional* prediction: Euler x' = x0_g + t' v_u; ping-pong
  x' = x0_g + t' (eps - x0_u) (the paper's Ping-Pong++, w = 0.7).

A sampler is a small object (`Euler`, `PingPong`) that says how the
sample moves from level t to t_next given the guided x0 estimate; `step`
applies guidance and then the sampler's own update. `get(name)` turns the
name a spec or a model package stores into the object.

Shapes: x, v_c, v_u [B,N,C]; t, t_next scalars; w, rescale scalars or [B].
"""
from __future__ import annotations

import dataclasses
from typing import Union

import jax.numpy as jnp


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


@dataclasses.dataclass(frozen=True)
class Euler:
  """Deterministic: follow the velocity from t to t_next."""
  name = "euler"

  def update(self, x, x0, v, t, t_next, eps):
    del x0, eps
    return x + (t_next - t) * v

  def update_plus_plus(self, x0, x0_u, v_u, t_next, eps):
    """CFG++: re-noise the guided x0 along the unconditional velocity."""
    del x0_u, eps
    return x0 + t_next * v_u


@dataclasses.dataclass(frozen=True)
class PingPong:
  """Stochastic: re-noise the x0 estimate to t_next with fresh noise."""
  name = "pingpong"

  def update(self, x, x0, v, t, t_next, eps):
    del x, v, t
    return (1.0 - t_next) * x0 + t_next * eps

  def update_plus_plus(self, x0, x0_u, v_u, t_next, eps):
    """Ping-Pong++: re-noise around the unconditional x0 estimate."""
    del v_u
    return x0 + t_next * (eps - x0_u)


Sampler = Union[Euler, PingPong]
BY_NAME = {s.name: s for s in (Euler(), PingPong())}
SAMPLERS = tuple(BY_NAME)


def get(sampler: Union[str, Sampler]) -> Sampler:
  """The sampler object of a name ("euler", "pingpong"); objects pass."""
  if isinstance(sampler, (Euler, PingPong)):
    return sampler
  if sampler not in BY_NAME:
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
  return BY_NAME[sampler]


def step(sampler: Union[str, Sampler], x, v_c, v_u, t, t_next, eps=None,
         scale=1.0, rescale=0.0, plus_plus: bool = False):
  """One sampler update; returns (x_next, x0_estimate).

  With v_u None (no CFG branch) guidance is off. `eps` is fresh noise for
  ping-pong (ignored by Euler).
  """
  sampler = get(sampler)
  if v_u is None:
    x0 = x - t * v_c
    return sampler.update(x, x0, v_c, t, t_next, eps), x0
  if plus_plus:
    x0_c, x0_u = x - t * v_c, x - t * v_u
    w = _b(scale, x)
    x0 = x0_u + w * (x0_c - x0_u)
    return sampler.update_plus_plus(x0, x0_u, v_u, t_next, eps), x0
  v = cfg_velocity(v_c, v_u, scale, rescale)
  x0 = x - t * v
  return sampler.update(x, x0, v, t, t_next, eps), x0
