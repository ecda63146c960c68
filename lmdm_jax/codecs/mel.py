"""`mel`: the default weights-free codec (log-mel frames, Griffin-Lim inverse).

No pretrained neural codec can be had offline (see docs/codecs_and_import.md),
so models can be trained and listened to before an autoencoder exists: `mel`
has SAO's latent geometry (44.1 kHz stereo, hop 2048 -> 21.53 frames/s, 64
channels) and an inverse good enough to hear melody, rhythm and timbre.

Layout of one latent frame [64]:
  [0 : mid_bands)            log-mel power of the mid signal (L + R) / 2
  [mid_bands : 64)           log-mel power of the side signal (L - R) / 2

Why mid/side rather than 32 bands per channel: in music almost all of the
detail (melody, harmony, drums) is common to both channels, so the mid signal
gets most bands (48 by default: ~one band per 1/4 octave above 1 kHz) and the
side signal, which only carries stereo width and ambience, a coarse envelope
(16 bands). Per-channel bands would spend half of the channels on a second
copy of the same content and give each channel a coarser spectrum.

Analysis: Hann window of `n_fft` = 4 * hop samples (75 % overlap, what
Griffin-Lim needs to converge), centred frames (frame j is centred on sample
j * hop), power spectrum, triangular mel filters normalised to unit area (a
band value is the mean power of its bins). Latent = (ln(band + floor) -
offset) / scale with fixed constants chosen so that music around -20 dBFS
RMS gives latents of roughly zero mean and unit variance (measured on the
Wesnoth soundtrack, see docs). Everything is fixed: encode is a
deterministic function of the audio.

Synthesis: band powers -> linear power by linear interpolation between band
centres (the transposed peak-normalised filters), magnitudes -> fast
Griffin-Lim (momentum 0.99, `iters` iterations, fixed-seed random start)
for mid and side separately, then L = M + S, R = M - S.
"""
from __future__ import annotations

import numpy as np
import scipy.fft

from lmdm_jax.codecs.base import Codec, register_codec


def hz_to_mel(f):
  """Slaney-style mel scale: linear below 1 kHz, logarithmic above."""
  f = np.asarray(f, np.float64)
  lin = f / (200.0 / 3)
  log = 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
  return np.where(f < 1000.0, lin, log)


def mel_to_hz(m):
  m = np.asarray(m, np.float64)
  lin = m * (200.0 / 3)
  log = 1000.0 * np.exp((m - 15.0) * (np.log(6.4) / 27.0))
  return np.where(m < 15.0, lin, log)


def mel_filters(sample_rate: int, n_fft: int, bands: int, fmin: float,
                fmax: float):
  """Triangular filters [bands, n_fft // 2 + 1] with peaks of 1.

  Band b rises from centre b-1 to centre b and falls to centre b+1; the
  filters of neighbouring bands sum to 1 between the first and last centre.
  """
  freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
  edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), bands + 2))
  lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
  up = (freqs[None] - lo) / (mid - lo)
  down = (hi - freqs[None]) / (hi - mid)
  return np.clip(np.minimum(up, down), 0.0, None)


def frame_signal(x: np.ndarray, n_fft: int, hop: int, frames: int):
  """x [..., samples] -> [..., frames, n_fft] (a read-only view), frame j
  centred on j * hop."""
  pad = n_fft // 2
  need = (frames - 1) * hop + n_fft
  x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, max(0, need - pad
                                                      - x.shape[-1]))])
  # A strided view, not a gather: an index array of frames x n_fft int64
  # and its gathered copy cost more than the FFT (semitone encode ~2x).
  view = np.lib.stride_tricks.sliding_window_view(x, n_fft, axis=-1)
  return view[..., :(frames - 1) * hop + 1:hop, :]


def stft(x: np.ndarray, window: np.ndarray, hop: int, frames: int):
  """x [..., samples] -> complex [..., frames, n_fft // 2 + 1]."""
  return scipy.fft.rfft(frame_signal(x, len(window), hop, frames) * window,
                        axis=-1)


def istft(spec: np.ndarray, window: np.ndarray, hop: int, samples: int):
  """Weighted overlap-add inverse of `stft`.

  spec [..., frames, n_fft // 2 + 1] -> [..., samples]; n_fft must be a
  multiple of hop (the overlap-add is then `n_fft / hop` strided adds).
  """
  n_fft = len(window)
  if n_fft % hop:
    raise ValueError(f"n_fft {n_fft} must be a multiple of hop {hop}")
  r, frames = n_fft // hop, spec.shape[-2]
  y = (scipy.fft.irfft(spec, n=n_fft, axis=-1) * window).reshape(
      spec.shape[:-2] + (frames, r, hop))
  w = (window ** 2).reshape(r, hop)
  out = np.zeros(spec.shape[:-2] + (frames + r - 1, hop), y.dtype)
  norm = np.zeros((frames + r - 1, hop), y.dtype)
  for k in range(r):
    out[..., k:k + frames, :] += y[..., k, :]
    norm[k:k + frames] += w[k]
  pad = n_fft // 2
  out = out.reshape(spec.shape[:-2] + (-1,))[..., pad:pad + samples]
  norm = norm.reshape(-1)[pad:pad + samples]
  return out / np.maximum(norm, 1e-8)


@register_codec("mel")
class MelCodec(Codec):
  """Mid/side log-mel codec; see the module docstring for the layout.

  Args:
    sample_rate, hop: audio rate and samples per latent frame.
    latent_channels: total bands (mid_bands + side bands).
    mid_bands: bands given to the mid signal; the rest go to the side.
    fmin, fmax: frequency range of the filters (fmax default: Nyquist).
    iters: Griffin-Lim iterations of `decode`.
    offset, scale: latent = (ln(power + floor) - offset) / scale.
  """
  name = "mel"

  def __init__(self, sample_rate: int = 44100, hop: int = 2048,
               latent_channels: int = 64, mid_bands: int = 48,
               fmin: float = 30.0, fmax: float | None = None,
               iters: int = 32, offset: float = -15.0, scale: float = 4.5,
               floor: float = 1e-10):
    if hop <= 0 or sample_rate <= 0:
      raise ValueError(f"hop and sample_rate must be positive, got hop={hop},"
                       f" sample_rate={sample_rate}")
    if not 0 < mid_bands < latent_channels:
      raise ValueError(f"mid_bands must be in (0, latent_channels="
                       f"{latent_channels}), got {mid_bands}")
    fmax = sample_rate / 2 if fmax is None else fmax
    if not 0 <= fmin < fmax <= sample_rate / 2:
      raise ValueError(f"need 0 <= fmin < fmax <= {sample_rate / 2}, got "
                       f"fmin={fmin}, fmax={fmax}")
    if iters < 0 or scale <= 0 or floor <= 0:
      raise ValueError("iters must be >= 0, scale and floor positive")
    self.sample_rate, self.channels, self.hop = sample_rate, 2, hop
    self.latent_channels, self.mid_bands = latent_channels, mid_bands
    self.iters, self.offset, self.scale, self.floor = (iters, offset, scale,
                                                       floor)
    self.n_fft = 4 * hop
    self.window = np.hanning(self.n_fft + 1)[:-1]   # periodic Hann
    side_bands = latent_channels - mid_bands
    self._synth, self._analysis = [], []
    for bands in (mid_bands, side_bands):
      peak = mel_filters(sample_rate, self.n_fft, bands, fmin, fmax)
      area = peak / np.maximum(peak.sum(-1, keepdims=True), 1e-12)
      self._analysis.append(area)         # band = mean power of its bins
      self._synth.append(peak.T)          # bins = interpolated band powers
    # Power of a full-scale sine in its bin (sum(window)/2)^2: scaling the
    # spectrum by it makes band powers independent of n_fft.
    self._norm = (self.window.sum() / 2) ** 2

  # -- analysis ------------------------------------------------------------
  def _mid_side(self, audio):
    return 0.5 * (audio[0] + audio[1]), 0.5 * (audio[0] - audio[1])

  def encode(self, audio: np.ndarray) -> np.ndarray:
    """[2, samples] float32 -> [samples // hop, 64] float32 latents."""
    # float32 FFTs: a 5 min track frames into 6.5k x 8192 samples per signal.
    audio = self.check_audio(audio)
    frames = audio.shape[1] // self.hop
    if frames == 0:
      raise ValueError(f"mel codec needs at least hop={self.hop} samples, "
                       f"got {audio.shape[1]}")
    outs = []
    for sig, fb in zip(self._mid_side(audio), self._analysis):
      spec = stft(sig, self.window.astype(np.float32), self.hop, frames)
      power = np.square(np.abs(spec), dtype=np.float64)
      outs.append(power / self._norm @ fb.T)
    z = (np.log(np.concatenate(outs, -1) + self.floor) - self.offset)
    return (z / self.scale).astype(np.float32)

  # -- synthesis -----------------------------------------------------------
  def magnitudes(self, latents: np.ndarray):
    """Latents [frames, 64] -> (mid, side) linear magnitudes [frames, bins]."""
    latents = self.check_latents(latents).astype(np.float64)
    power = np.exp(latents * self.scale + self.offset) - self.floor
    power = np.clip(power, 0.0, None) * self._norm
    parts = (power[:, :self.mid_bands], power[:, self.mid_bands:])
    return tuple(np.sqrt(p @ s.T) for p, s in zip(parts, self._synth))

  def griffin_lim(self, mag: np.ndarray, samples: int) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin et al. 2013), float32.

    mag [..., frames, bins] -> [..., samples]. Starts from random phases of
    a fixed seed, so decoding is deterministic (a zero-phase start puts
    every frame's pulse on the window's zero at the frame edge).
    """
    frames = mag.shape[-2]
    mag = mag.astype(np.float32)
    window = self.window.astype(np.float32)
    phase = np.random.default_rng(0).uniform(0, 2 * np.pi, mag.shape)
    angles = np.exp(1j * phase).astype(np.complex64)
    prev = np.zeros_like(angles)
    momentum = np.float32(0.99 / 1.99)
    for _ in range(self.iters):
      y = istft(mag * angles, window, self.hop, samples)
      rebuilt = stft(y, window, self.hop, frames)
      angles = rebuilt - momentum * prev
      prev = rebuilt
      angles /= np.maximum(np.abs(angles), 1e-12)
    return istft(mag * angles, window, self.hop, samples)

  def decode(self, latents: np.ndarray) -> np.ndarray:
    """[frames, 64] latents -> [2, frames * hop] float32 audio."""
    latents = self.check_latents(latents)
    if latents.shape[0] == 0:
      raise ValueError("mel codec cannot decode zero frames")
    samples = latents.shape[0] * self.hop
    mid, side = self.magnitudes(latents)
    mid, side = (self.griffin_lim(m, samples) for m in (mid, side))
    return np.stack([mid + side, mid - side]).astype(np.float32)
