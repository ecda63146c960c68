"""Codec round-trip quality and speed on a real recording.

  lmdm bench codec --codec mel --audio music.ogg --seconds 30 --json out.json

Metrics (audio x, decoded y = decode(encode(x)), both [2, samples]):
  lsd_db: log-spectral distance, the RMS over frequency of the difference of
    the dB power spectra (2048-point STFT, hop 512), averaged over frames and
    channels; frames more than 60 dB below the loudest are skipped (silence
    dominates LSD otherwise).
  mel_snr_db: 10 log10(|M|^2 / |M - M'|^2) of 128-band mel power
    spectrograms (independent of the codec's own filters), all channels.
  log_mel_l1_db: mean |dB difference| of the same mel spectrograms.
  latent_rt_mae: mean |encode(y) - encode(x)| in latent units (how
    consistent the inverse is with the encoder: 0 for a perfect inverse).
  encode_rtf / decode_rtf: seconds of audio per second of compute (> 1 is
    faster than real time), best of `repeats`.
"""
from __future__ import annotations

import time

import numpy as np

from lmdm_jax.codecs.base import Codec
from lmdm_jax.codecs.mel import mel_filters, stft


def load_audio(path: str, sample_rate: int, channels: int, offset_s: float,
               seconds: float) -> np.ndarray:
  """Reads `seconds` from `offset_s` of a file -> float32 [channels, samples].

  Resamples with a polyphase filter if the file's rate differs; mono files
  are duplicated to stereo.
  """
  import soundfile as sf  # optional: the `data` extra
  from scipy.signal import resample_poly
  info = sf.info(path)
  start = int(offset_s * info.samplerate)
  stop = start + int(seconds * info.samplerate) if seconds > 0 else None
  a, sr = sf.read(path, start=start, stop=stop, dtype="float32",
                  always_2d=True)
  a = a.T
  if a.shape[1] == 0:
    raise ValueError(f"{path}: no audio after {offset_s} s")
  if a.shape[0] == 1 and channels == 2:
    a = np.repeat(a, 2, axis=0)
  if a.shape[0] != channels:
    raise ValueError(f"{path} has {a.shape[0]} channels, codec wants "
                     f"{channels}")
  if sr != sample_rate:
    g = np.gcd(int(sr), int(sample_rate))
    a = resample_poly(a, sample_rate // g, sr // g, axis=1).astype(np.float32)
  return a


def _power_db(x, n_fft=2048, hop=512):
  window = np.hanning(n_fft + 1)[:-1]
  frames = x.shape[-1] // hop
  p = np.abs(stft(x.astype(np.float64), window, hop, frames)) ** 2
  return 10 * np.log10(p + 1e-12)


def log_spectral_distance(x: np.ndarray, y: np.ndarray) -> float:
  """Mean over frames of the RMS dB difference. x, y [channels, samples]."""
  px, py = _power_db(x), _power_db(y)
  loud = px.max(-1) > px.max() - 60
  d = np.sqrt(np.mean((px - py) ** 2, axis=-1))
  return float(d[loud].mean())


def mel_metrics(x: np.ndarray, y: np.ndarray, sample_rate: int):
  """(SNR dB, mean |dB difference|) of 128-band mel power spectrograms.

  x, y [channels, samples].
  """
  fb = mel_filters(sample_rate, 2048, 128, 0.0, sample_rate / 2)
  window = np.hanning(2049)[:-1]
  frames = x.shape[-1] // 512

  def mel(a):
    return np.abs(stft(a.astype(np.float64), window, 512, frames)) ** 2 @ fb.T

  mx, my = mel(x), mel(y)
  snr = 10 * np.log10(np.sum(mx ** 2) / np.sum((mx - my) ** 2))
  l1 = np.mean(np.abs(10 * np.log10(mx + 1e-10) - 10 * np.log10(my + 1e-10)))
  return float(snr), float(l1)


def measure(codec: Codec, audio: np.ndarray, repeats: int = 2) -> dict:
  """Round-trip metrics and real-time factors of `codec` on `audio`."""
  audio = codec.check_audio(audio)
  frames = audio.shape[1] // codec.hop
  audio = audio[:, :frames * codec.hop]
  seconds = audio.shape[1] / codec.sample_rate
  enc_t, dec_t = [], []
  for _ in range(repeats):
    t0 = time.perf_counter()
    z = codec.encode(audio)
    enc_t.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    y = codec.decode(z)
    dec_t.append(time.perf_counter() - t0)
  snr, l1 = mel_metrics(audio, y, codec.sample_rate)
  return {
      "codec": codec.name, "seconds": seconds, "frames": int(frames),
      "latent_channels": codec.latent_channels,
      "latent_mean": float(z.mean()), "latent_std": float(z.std()),
      "lsd_db": log_spectral_distance(audio, y),
      "mel_snr_db": snr, "log_mel_l1_db": l1,
      "latent_rt_mae": float(np.abs(codec.encode(y) - z).mean()),
      "encode_s": min(enc_t), "decode_s": min(dec_t),
      "encode_rtf": seconds / min(enc_t), "decode_rtf": seconds / min(dec_t),
  }
