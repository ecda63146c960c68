"""The codec interface and registry.

A codec turns audio [channels, samples] at `sample_rate` into latents
[frames, latent_channels] at `frame_rate` and back. Configs, the dataset
builder and the generator choose codecs by name:

  codec = get_codec("pool")            # or get_codec("pool", **kwargs)
  z = codec.encode(audio)              # [frames, latent_channels]
  y = codec.decode(z)                  # [channels, frames * hop]
"""
from __future__ import annotations

import abc
import numpy as np

from lmdm_jax.registry import Registry


class Codec(abc.ABC):
  """Waveform <-> latent frames. Audio is float32 [channels, samples]."""

  name: str = "codec"
  sample_rate: int
  channels: int           # audio channels the codec expects
  hop: int                # samples per latent frame
  latent_channels: int
  # Where latent frame j sits, in frames after sample j * hop: 0.0 when it is
  # centred on j * hop (the mel codec's centred STFT), 0.5 when it covers
  # samples [j * hop, (j + 1) * hop) (Oobleck, pool). Audio features meant
  # to line up with the latents (data/controls.py) use it.
  frame_centre: float = 0.0

  @property
  def frame_rate(self) -> float:
    return self.sample_rate / self.hop

  @abc.abstractmethod
  def encode(self, audio: np.ndarray) -> np.ndarray:
    """[channels, samples] -> [samples // hop, latent_channels]."""

  @abc.abstractmethod
  def decode(self, latents: np.ndarray) -> np.ndarray:
    """[frames, latent_channels] -> [channels, frames * hop]."""

  def check_audio(self, audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, np.float32)
    if audio.ndim != 2 or audio.shape[0] != self.channels:
      raise ValueError(
          f"{self.name} codec expects audio [channels={self.channels}, "
          f"samples] at {self.sample_rate} Hz, got shape {audio.shape}")
    return audio

  def check_latents(self, latents: np.ndarray) -> np.ndarray:
    latents = np.asarray(latents, np.float32)
    if latents.ndim != 2 or latents.shape[1] != self.latent_channels:
      raise ValueError(
          f"{self.name} codec expects latents [frames, "
          f"{self.latent_channels}], got shape {latents.shape}")
    return latents


_CODECS = Registry("codec")


def register_codec(name: str):
  """Class decorator: makes a codec constructible by name."""
  return _CODECS.register(name)


def get_codec(name: str, **kwargs) -> Codec:
  return _CODECS.get(name)(**kwargs)


def registered():
  return _CODECS.names()
