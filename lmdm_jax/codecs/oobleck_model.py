"""Stable Audio Open's Oobleck VAE (encoder and decoder) in Flax.

Channels-last: audio [B, samples, channels], latents [B, frames, C].
Module names mirror stable-audio-tools' `OobleckEncoder`/`OobleckDecoder`
(`layers_1/layers_0/layers_1` for `layers.1.layers.0.layers.1`); weight
norm is folded into plain kernels at conversion time (`w = g v / |v|`),
so the Flax model holds only `kernel` [k, in, out] and `bias` [out].

  encoder: conv7(in -> C) -> per stride s: 3 residual units (dilation 1, 3,
           9) + act + conv(2s, stride s) -> act -> conv3(-> 2 * latent)
  decoder: conv7(latent -> C*m) -> per stride s (reversed): act +
           transposed conv(2s, stride s) + 3 residual units -> act ->
           conv7(-> out, no bias) -> tanh (optional)
  residual unit: x + conv1(act(conv7_dilated(act(x))))
  act: SnakeBeta x + sin^2(e^a x) / (e^b + 1e-9) with per-channel a, b
       (log scale), or ELU.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class OobleckConfig:
  """Architecture (SAO 1.0 / Small: channels 128, c_mults (1, 2, 4, 8, 16),
  strides (2, 4, 4, 8, 8), latent_dim 64, snake, final_tanh False)."""
  audio_channels: int = 2
  channels: int = 128
  c_mults: Tuple[int, ...] = (1, 2, 4, 8, 16)
  strides: Tuple[int, ...] = (2, 4, 4, 8, 8)
  latent_dim: int = 64
  use_snake: bool = True
  final_tanh: bool = False

  def __post_init__(self):
    if len(self.c_mults) != len(self.strides):
      raise ValueError(f"c_mults {self.c_mults} and strides {self.strides} "
                       f"need the same length")
    if min(self.strides) < 1 or self.channels < 1 or self.latent_dim < 1:
      raise ValueError("strides, channels and latent_dim must be positive")

  @property
  def hop(self) -> int:
    return math.prod(self.strides)

  def decoder_radius(self) -> int:
    """Latent frames either side that one decoded sample depends on.

    Sum over layers of each conv's reach divided by the upsampling that
    precedes it, rounded up: decoding a window with this many extra frames
    on both sides reproduces the whole-sequence decode in its middle.
    """
    reach = 3.0                                       # first conv7
    rate = 1
    for s in reversed(self.strides):
      reach += 1.0 / rate                             # transposed conv
      rate *= s
      reach += 3 * (1 + 3 + 9) / rate                # residual units
    reach += 3.0 / rate                               # final conv7
    return int(math.ceil(reach)) + 1


  def encoder_radius(self) -> int:
    """Latent frames either side that one encoded frame depends on.

    Each conv's reach in samples (residual units 3 * (1 + 3 + 9) at the
    block's input rate, the strided conv's kernel 2s, the final conv3 at
    the frame rate), summed and divided by the hop, rounded up, plus one:
    encoding a window with this many extra frames on both sides
    reproduces the whole-sequence encode in its middle.
    """
    reach = 3.0                                       # first conv7
    rate = 1
    for s in self.strides:
      reach += 3 * (1 + 3 + 9) * rate                 # residual units
      reach += 2 * s * rate                           # strided conv
      rate *= s
    reach += 1.0 * rate                               # final conv3
    return int(math.ceil(reach / rate)) + 1


def _conv(x, kernel, bias, stride=1, dilation=1, padding=0):
  """torch Conv1d semantics on [B, T, Cin]; kernel [k, Cin, Cout]."""
  y = jax.lax.conv_general_dilated(
      x, kernel, (stride,), [(padding, padding)], rhs_dilation=(dilation,),
      dimension_numbers=("NWC", "WIO", "NWC"),
      precision=jax.lax.Precision.HIGHEST)
  return y if bias is None else y + bias


def _conv_transpose(x, kernel, bias, stride, padding):
  """torch ConvTranspose1d on [B, T, Cin]; kernel [k, Cin, Cout] (already
  flipped along k at conversion). Output length (T-1)s - 2p + k."""
  k = kernel.shape[0]
  y = jax.lax.conv_general_dilated(
      x, kernel, (1,), [(k - 1 - padding, k - 1 - padding)],
      lhs_dilation=(stride,), dimension_numbers=("NWC", "WIO", "NWC"),
      precision=jax.lax.Precision.HIGHEST)
  return y + bias


class Conv(nn.Module):
  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1
  padding: int = 0
  use_bias: bool = True
  transpose: bool = False

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1] * self.kernel_size
    k = self.param("kernel", nn.initializers.normal(1 / math.sqrt(fan_in)),
                   (self.kernel_size, x.shape[-1], self.features))
    b = (self.param("bias", nn.initializers.zeros, (self.features,))
         if self.use_bias else None)
    if self.transpose:
      return _conv_transpose(x, k, b, self.stride, self.padding)
    return _conv(x, k, b, self.stride, self.dilation, self.padding)


class SnakeBeta(nn.Module):
  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    a = jnp.exp(self.param("alpha", nn.initializers.zeros, (c,)))
    b = jnp.exp(self.param("beta", nn.initializers.zeros, (c,)))
    return x + jnp.square(jnp.sin(x * a)) / (b + 1e-9)


def _act(use_snake, name):
  return SnakeBeta(name=name) if use_snake else (lambda x: nn.elu(x))


class ResidualUnit(nn.Module):
  features: int
  dilation: int
  use_snake: bool

  @nn.compact
  def __call__(self, x):
    pad = self.dilation * 3
    h = _act(self.use_snake, "layers_0")(x)
    h = Conv(self.features, 7, dilation=self.dilation, padding=pad,
             name="layers_1")(h)
    h = _act(self.use_snake, "layers_2")(h)
    h = Conv(self.features, 1, name="layers_3")(h)
    return x + h


class EncoderBlock(nn.Module):
  features: int
  stride: int
  use_snake: bool

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    for i, d in enumerate((1, 3, 9)):
      x = ResidualUnit(c, d, self.use_snake, name=f"layers_{i}")(x)
    x = _act(self.use_snake, "layers_3")(x)
    return Conv(self.features, 2 * self.stride, stride=self.stride,
                padding=math.ceil(self.stride / 2), name="layers_4")(x)


class DecoderBlock(nn.Module):
  features: int
  stride: int
  use_snake: bool

  @nn.compact
  def __call__(self, x):
    x = _act(self.use_snake, "layers_0")(x)
    x = Conv(self.features, 2 * self.stride, stride=self.stride,
             padding=math.ceil(self.stride / 2), transpose=True,
             name="layers_1")(x)
    for i, d in enumerate((1, 3, 9)):
      x = ResidualUnit(self.features, d, self.use_snake,
                       name=f"layers_{i + 2}")(x)
    return x


class OobleckEncoder(nn.Module):
  """audio [B, samples, audio_channels] -> [B, samples / hop, 2 * latent]
  (VAE mean and scale; see `vae_mean`)."""
  config: OobleckConfig

  @nn.compact
  def __call__(self, x):
    c = self.config
    mults = (1,) + tuple(c.c_mults)
    x = Conv(mults[0] * c.channels, 7, padding=3, name="layers_0")(x)
    for i, s in enumerate(c.strides):
      x = EncoderBlock(mults[i + 1] * c.channels, s, c.use_snake,
                       name=f"layers_{i + 1}")(x)
    n = len(c.strides) + 1
    x = _act(c.use_snake, f"layers_{n}")(x)
    return Conv(2 * c.latent_dim, 3, padding=1, name=f"layers_{n + 1}")(x)


class OobleckDecoder(nn.Module):
  """latents [B, frames, latent_dim] -> audio [B, frames * hop, channels]."""
  config: OobleckConfig

  @nn.compact
  def __call__(self, z):
    c = self.config
    mults = (1,) + tuple(c.c_mults)
    x = Conv(mults[-1] * c.channels, 7, padding=3, name="layers_0")(z)
    depth = len(c.strides)
    for j, i in enumerate(range(depth, 0, -1)):
      x = DecoderBlock(mults[i - 1] * c.channels, c.strides[i - 1],
                       c.use_snake, name=f"layers_{j + 1}")(x)
    x = _act(c.use_snake, f"layers_{depth + 1}")(x)
    x = Conv(c.audio_channels, 7, padding=3, use_bias=False,
             name=f"layers_{depth + 2}")(x)
    return jnp.tanh(x) if c.final_tanh else x


def vae_mean(encoded):
  """SAO's VAE bottleneck, deterministic: the mean half of the channels."""
  return jnp.split(encoded, 2, axis=-1)[0]
