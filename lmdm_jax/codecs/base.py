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
  # Constructor arguments that do not change what the latents mean (only
  # how they are decoded, how fast, or how encoding is batched): a dataset
  # and a model package may differ in them (`data.reading.check_codec`
  # ignores them).
  latent_neutral_kwargs: tuple = ()
  # Bumped whenever a change to the code makes `encode` return different
  # latents for the same audio and arguments: `lmdm data build`'s encoding
  # cache keys on it (lmdm_jax/data/encode_cache.py), so a rebuild after
  # such a change re-encodes instead of mixing old latents with new. 0
  # (every codec's value when it was introduced) leaves the key as it was.
  encode_version: int = 0

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


class WindowStreamDecoder:
  """Block-by-block decoding equal to the whole-sequence decode, for a
  codec whose `decode_window(latents [n, C], start)` -> [2, n * hop] makes
  frame i's audio from frames i - history .. i + radius only (the semitone
  codec: radius 1, a frame's envelope runs to the next frame's centre;
  history 2 in its onset layout, where a step's level can come from the
  onset two frames back).

  push(latents [n, C]) -> audio [2, m * hop] for the m frames that became
  final (all but the last `radius` frames pushed); flush() -> the rest.
  Latency: `radius` frames (history costs compute, not latency).
  """

  def __init__(self, codec: "Codec", radius: int, history: int | None = None):
    history = radius if history is None else history
    if radius < 0 or history < 0:
      raise ValueError(f"radius and history must be >= 0, got {radius}, "
                       f"{history}")
    self.codec, self.radius, self.history = codec, int(radius), int(history)
    self._buf = np.zeros((0, codec.latent_channels), np.float32)
    self._start = 0        # absolute index of self._buf[0]
    self._emitted = 0      # frames whose audio has been returned

  def _emit(self, stop: int) -> np.ndarray:
    r, back = self.radius, self.history
    if stop <= self._emitted:
      return np.zeros((2, 0), np.float32)
    total = self._start + len(self._buf)
    lo, hi = max(0, self._emitted - back), min(total, stop + r)
    y = self.codec.decode_window(self._buf[lo - self._start:hi - self._start],
                                 lo)
    out = y[:, (self._emitted - lo) * self.codec.hop:
            (stop - lo) * self.codec.hop]
    self._emitted = stop
    keep = max(0, self._emitted - back) - self._start
    self._buf, self._start = self._buf[keep:], self._start + keep
    return out

  def push(self, latents: np.ndarray) -> np.ndarray:
    latents = self.codec.check_latents(latents)
    self._buf = np.concatenate([self._buf, latents])
    return self._emit(self._start + len(self._buf) - self.radius)

  def flush(self) -> np.ndarray:
    return self._emit(self._start + len(self._buf))


def register_codec(name: str):
  """Class decorator: makes a codec constructible by name."""
  return _CODECS.register(name)


def get_codec(name: str, **kwargs) -> Codec:
  return _CODECS.get(name)(**kwargs)


def codec_class(name: str) -> type:
  """The registered codec class `name` (ValueError when unknown)."""
  return _CODECS.get(name)


def registered():
  return _CODECS.names()
