"""`pool`: a trivial deterministic codec for tests (no weights, lossy).

Each frame of `hop` samples per channel is split into
latent_channels / channels equal segments whose means are the latents;
decoding repeats each mean over its segment. At 44.1 kHz, hop 2048 and 64
latent channels it has SAO's latent geometry (21.53 frames/s, 64 channels),
so the data pipeline and models can be exercised before a real codec is
chosen. It carries only the low-frequency envelope: not for listening.
"""
from __future__ import annotations

import numpy as np

from lmdm_jax.codecs.base import Codec, register_codec


@register_codec("pool")
class PoolCodec(Codec):
  name = "pool"
  frame_centre = 0.5        # frame j is the mean of [j * hop, (j+1) * hop)

  def __init__(self, sample_rate: int = 44100, channels: int = 2,
               hop: int = 2048, latent_channels: int = 64):
    if latent_channels % channels:
      raise ValueError("latent_channels must be a multiple of channels")
    self.sample_rate, self.channels = sample_rate, channels
    self.hop, self.latent_channels = hop, latent_channels
    self.segments = latent_channels // channels
    if hop % self.segments:
      raise ValueError(f"hop {hop} must be a multiple of "
                       f"{self.segments} segments")

  def encode(self, audio):
    audio = self.check_audio(audio)
    frames = audio.shape[1] // self.hop
    x = audio[:, :frames * self.hop].reshape(
        self.channels, frames, self.segments, self.hop // self.segments)
    return x.mean(-1).transpose(1, 0, 2).reshape(frames, -1)

  def decode(self, latents):
    latents = self.check_latents(latents)
    frames = latents.shape[0]
    z = latents.reshape(frames, self.channels, self.segments)
    y = np.repeat(z[..., None], self.hop // self.segments, axis=-1)
    return y.transpose(1, 0, 2, 3).reshape(self.channels, -1)
