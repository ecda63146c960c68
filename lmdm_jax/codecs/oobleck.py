"""`oobleck`: Stable Audio Open's VAE as a codec (weights from a converted dir).

  codec = get_codec("oobleck", directory="vae/")   # from `lmdm convert oobleck`
  codec = package.load("pkg/").make_codec()        # a model package's
  z = codec.encode(audio)      # [2, samples] -> [samples // 2048, 64] (mean)
  y = codec.decode(z)

Batched encode (`encode`, what `lmdm data build` calls per file): a file
longer than one window of `chunk + 2 * margin` frames (margin =
`OobleckConfig.encoder_radius`, 10 for SAO's VAE) is cut into such windows
at frame boundaries, `batch` of them per jitted call, and each window
keeps its middle `chunk` frames (the first and last windows start and end
at the file's edges, so the edges are encoded as the whole file is). The
result equals the whole-file encode up to float round-off (tested), and
every file of any length runs the same compiled program (one compile per
build instead of one per file length; shorter files are encoded whole).

Streaming decode (`stream_decoder`): latents arrive block by block; a
decoded sample depends on `radius` latent frames either side
(`OobleckConfig.decoder_radius`, 11 for SAO's VAE = 0.51 s), so the decoder
emits audio for all frames that already have `radius` frames of right
context, decoding each time a window that starts `radius` frames before the
first frame not yet emitted. Because the convolutions only reach that far,
the emitted audio equals the whole-sequence decode up to float round-off
(tested); the price is `radius` frames of latency (2 * radius before the
first audio), and (radius + block + radius) frames of decoder work per
block. Windows have a fixed length for a fixed block size, so a stream
compiles the decoder about three times (first window, steady state, flush).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.codecs.base import Codec, register_codec
from lmdm_jax.codecs.oobleck_model import (OobleckDecoder, OobleckEncoder,
                                           vae_mean)


@register_codec("oobleck")
class OobleckCodec(Codec):
  """SAO's Oobleck VAE. Needs `directory` (from `lmdm convert oobleck`), or
  `config` and `params` ({"encoder", "decoder"}) directly (a package's:
  `Pretrained.make_codec`). chunk, batch: the batched encode's windows
  (module docstring)."""
  name = "oobleck"
  frame_centre = 0.5        # frame j encodes [j * hop, (j + 1) * hop)
  latent_neutral_kwargs = ("chunk", "batch")   # equal to the whole encode

  def __init__(self, directory: str | None = None, config=None, params=None,
               sample_rate: int = 44100, chunk: int = 256, batch: int = 4):
    if directory is not None:
      from lmdm_jax.convert.oobleck import load_oobleck
      config, params = load_oobleck(directory)
    if config is None or params is None:
      raise ValueError("oobleck codec needs directory=<converted VAE dir> "
                       "(lmdm convert oobleck) or config= and params=")
    if chunk < 1 or batch < 1:
      raise ValueError(f"oobleck codec: chunk and batch must be >= 1, got "
                       f"{chunk} and {batch}")
    self.config, self.params = config, params
    self.chunk, self.batch = int(chunk), int(batch)
    self.margin = config.encoder_radius()
    self.sample_rate, self.channels = sample_rate, config.audio_channels
    self.hop, self.latent_channels = config.hop, config.latent_dim
    self._enc = jax.jit(lambda p, x: vae_mean(OobleckEncoder(config).apply(
        {"params": p}, x)))
    self._dec = jax.jit(lambda p, z: OobleckDecoder(config).apply(
        {"params": p}, z))

  def encode(self, audio: np.ndarray) -> np.ndarray:
    """[channels, samples] -> [samples // hop, latent] (VAE mean).

    Trailing samples beyond a whole frame are dropped.
    """
    audio = self.check_audio(audio)
    frames = audio.shape[1] // self.hop
    if frames == 0:
      raise ValueError(f"oobleck codec needs at least hop={self.hop} "
                       f"samples, got {audio.shape[1]}")
    x = audio[:, :frames * self.hop].T
    n = self.chunk + 2 * self.margin
    if frames <= n:
      return np.asarray(self._enc(self.params["encoder"],
                                  jnp.asarray(x[None]))[0])
    return self._encode_windows(x, frames, n)

  def _encode_windows(self, x: np.ndarray, frames: int, n: int):
    """x [frames * hop, channels] -> [frames, latent] through windows of n
    frames (see the module docstring)."""
    h, keep = self.hop, self.chunk
    outs = [(a, min(max(a - self.margin, 0), frames - n))
            for a in range(0, frames, keep)]         # (first kept, start)
    z = np.zeros((frames, self.latent_channels), np.float32)
    for i in range(0, len(outs), self.batch):
      group = outs[i:i + self.batch]
      win = np.zeros((self.batch, n * h, x.shape[1]), np.float32)
      for j, (_, s) in enumerate(group):
        win[j] = x[s * h:(s + n) * h]
      e = np.asarray(self._enc(self.params["encoder"], jnp.asarray(win)))
      for j, (a, s) in enumerate(group):
        b = min(a + keep, frames)
        z[a:b] = e[j, a - s:b - s]
    return z

  def decode_window(self, latents: np.ndarray) -> np.ndarray:
    """[frames, latent] -> [channels, frames * hop] without checks."""
    y = self._dec(self.params["decoder"], jnp.asarray(latents[None]))
    return np.asarray(y[0]).T

  def decode(self, latents: np.ndarray) -> np.ndarray:
    latents = self.check_latents(latents)
    if latents.shape[0] == 0:
      raise ValueError("oobleck codec cannot decode zero frames")
    return self.decode_window(latents)

  def stream_decoder(self) -> "StreamDecoder":
    return StreamDecoder(self)


class StreamDecoder:
  """Block-by-block decoding equal to the whole-sequence decode.

  push(latents [n, C]) -> audio [channels, m * hop] for the m frames that
  became final; flush() -> the rest. See the module docstring.
  """

  def __init__(self, codec: OobleckCodec):
    self.codec = codec
    self.radius = codec.config.decoder_radius()
    self._buf = np.zeros((0, codec.latent_channels), np.float32)
    self._start = 0        # global index of self._buf[0]
    self._emitted = 0      # frames whose audio has been returned

  def _emit(self, stop: int) -> np.ndarray:
    hop, r = self.codec.hop, self.radius
    if stop <= self._emitted:
      return np.zeros((self.codec.channels, 0), np.float32)
    total = self._start + len(self._buf)
    lo = max(0, self._emitted - r)
    hi = min(total, stop + r)
    y = self.codec.decode_window(self._buf[lo - self._start:hi - self._start])
    out = y[:, (self._emitted - lo) * hop:(stop - lo) * hop]
    self._emitted = stop
    keep = max(0, self._emitted - r) - self._start   # drop unneeded history
    self._buf, self._start = self._buf[keep:], self._start + keep
    return out

  def push(self, latents: np.ndarray) -> np.ndarray:
    latents = self.codec.check_latents(latents)
    self._buf = np.concatenate([self._buf, latents])
    total = self._start + len(self._buf)
    if total < 2 * self.radius + 1:
      # Wait for one full window: afterwards every window has the same
      # length for a fixed block size (one compilation, not one per push).
      return np.zeros((self.codec.channels, 0), np.float32)
    return self._emit(total - self.radius)

  def flush(self) -> np.ndarray:
    return self._emit(self._start + len(self._buf))
