"""SAO's `NumberConditioner` (e.g. `seconds_total`) in Flax.

value [B] -> clamp to [min_val, max_val] -> normalise to [0, 1] ->
learned Fourier features [x, sin(2 pi x w), cos(2 pi x w)] (w [dim/2]) ->
Linear(dim + 1 -> output_dim) -> embedding [B, 1, output_dim], mask ones.

Parameter names mirror stable-audio-tools key by key:
`embedder.embedding.0.weights` -> `embedder/embedding_0/weights`,
`embedder.embedding.1.{weight,bias}` -> `embedder/embedding_1/{kernel,bias}`.
Note the feature order [x, sin, cos], unlike the DiT's [cos, sin] timestep
features.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from lmdm_jax.conditioners.base import register_conditioner
from lmdm_jax.model.dit import torch_linear_init


class LearnedFourier(nn.Module):
  """x [B] -> [B, dim + 1] = [x, sin(2 pi x w), cos(2 pi x w)]."""
  dim: int

  @nn.compact
  def __call__(self, x):
    w = self.param("weights", nn.initializers.normal(1.0), (self.dim // 2,))
    f = x[:, None] * w[None] * 2 * math.pi
    return jnp.concatenate([x[:, None], jnp.sin(f), jnp.cos(f)], axis=-1)


class NumberEmbedder(nn.Module):
  features: int
  dim: int = 256

  @nn.compact
  def __call__(self, x):
    h = LearnedFourier(self.dim, name="embedding_0")(x)
    return nn.Dense(self.features, kernel_init=torch_linear_init,
                    name="embedding_1")(h)


@register_conditioner("number")
class NumberConditioner(nn.Module):
  """A float per batch item -> one conditioning token.

  Attributes:
    output_dim: embedding width (768 for SAO).
    min_val, max_val: clamp range (SAO Small seconds_total: 0..256).
  """
  output_dim: int
  min_val: float = 0.0
  max_val: float = 1.0
  dim: int = 256

  def setup(self):
    if self.max_val <= self.min_val:
      raise ValueError(f"number conditioner {self.name}: max_val "
                       f"{self.max_val} must exceed min_val {self.min_val}")
    if self.dim % 2:
      raise ValueError(f"number conditioner dim must be even, got {self.dim}")
    self.embedder = NumberEmbedder(self.output_dim, self.dim)

  def __call__(self, values):
    """values [B] (or a list of floats) -> ([B, 1, D] float32, [B, 1] bool)."""
    v = jnp.asarray(values, jnp.float32)
    if v.ndim != 1:
      raise ValueError(f"number conditioner {self.name} expects one value "
                       f"per batch item, shape [B]; got {v.shape}")
    v = jnp.clip(v, self.min_val, self.max_val)
    v = (v - self.min_val) / (self.max_val - self.min_val)
    e = self.embedder(v)[:, None, :]
    return e, jnp.ones(e.shape[:2], bool)
