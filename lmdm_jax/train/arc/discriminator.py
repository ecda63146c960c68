"""The ARC-Forcing discriminator: a base DiT run to hidden layer L, then a
ConvNeXt head giving per-frame logits over the rollout region.

The backbone is a bidirectional copy of the *base* model (no input-add path,
no router, full attention), so its receptive field spans the whole
context + rollout sequence (paper: 768 frames). Text enters through the
backbone's cross-attention exactly as in the generator.

Head (paper code): channels 128, strides [1, 2, 2], channel multipliers
[1, 2, 4], blocks [2, 2, 2]: per stage a strided conv to the stage width then
ConvNeXt blocks (depthwise conv k=7, LayerNorm, 4x pointwise MLP with GELU,
residual); a final projection gives one logit per downsampled frame.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence, Tuple

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from lmdm_jax.model.config import DiTConfig
from lmdm_jax.model.dit import DiT
from lmdm_jax.model.rope import rope_table


@dataclasses.dataclass(frozen=True)
class DiscriminatorConfig:
  backbone: DiTConfig
  exit_layer: int = 11            # 0-based: the 12th of 16 layers
  channels: int = 128
  strides: Tuple[int, ...] = (1, 2, 2)
  mults: Tuple[int, ...] = (1, 2, 4)
  blocks: Tuple[int, ...] = (2, 2, 2)

  def __post_init__(self):
    if not 0 <= self.exit_layer < self.backbone.depth:
      raise ValueError(f"exit_layer must be in [0, {self.backbone.depth}), "
                       f"got {self.exit_layer}")
    if not len(self.strides) == len(self.mults) == len(self.blocks):
      raise ValueError("strides, mults and blocks must have equal lengths")
    if self.backbone.input_add_dim:
      raise ValueError("the discriminator backbone is the base model: "
                       "input_add_dim must be 0")

  @property
  def downsampling(self) -> int:
    return int(np.prod(self.strides))


class ConvNeXtBlock(nn.Module):
  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    h = nn.Conv(c, (7,), padding="SAME", feature_group_count=c,
                name="dwconv")(x)
    h = nn.LayerNorm(epsilon=1e-6, name="norm")(h)
    h = nn.Dense(4 * c, name="pw1")(h)
    h = nn.Dense(c, name="pw2")(nn.gelu(h))
    return x + h


class ConvNeXtHead(nn.Module):
  channels: int
  strides: Sequence[int]
  mults: Sequence[int]
  blocks: Sequence[int]

  @nn.compact
  def __call__(self, h):
    """h [B,N,D] -> logits [B, N / prod(strides)]."""
    for i, (s, m, n) in enumerate(zip(self.strides, self.mults,
                                      self.blocks)):
      h = nn.Conv(self.channels * m, (max(s, 1),), strides=(s,),
                  padding="VALID" if s > 1 else "SAME",
                  name=f"down_{i}")(h)
      for j in range(n):
        h = ConvNeXtBlock(name=f"stage_{i}_block_{j}")(h)
    h = nn.LayerNorm(epsilon=1e-6, name="final_norm")(h)
    return nn.Dense(1, name="logits")(h)[..., 0]


class Discriminator(nn.Module):
  config: DiscriminatorConfig

  def setup(self):
    c = self.config
    self.backbone = DiT(c.backbone)
    self.head = ConvNeXtHead(c.channels, c.strides, c.mults, c.blocks)

  def __call__(self, x_t, t, cross_tokens, global_cond, start: int):
    """x_t [B,N,C] noised sequence, t [B]; scores frames >= start.

    Returns per-frame logits [B, (N - start) / downsampling].
    """
    n = x_t.shape[1]
    if (n - start) % self.config.downsampling:
      raise ValueError(f"rollout length {n - start} must be a multiple of "
                       f"the head's downsampling {self.config.downsampling}")
    cfg = self.config.backbone
    table = rope_table(np.concatenate([np.arange(1, n + 1), [0]]),
                       cfg.rotary_dim, cfg.rope_base)
    cond = self.backbone.condition(cross_tokens, global_cond)
    h, _ = self.backbone.tokens(x_t, t, cond, table, table,
                                exit_layer=self.config.exit_layer)
    return self.head(h[:, start:].astype(jnp.float32))
