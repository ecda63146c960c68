"""Time-aligned sketch-control features from audio, at the latent frame rate.

Every function takes mono or multi-channel audio (`[samples]` or
`[channels, samples]`, float, channels are averaged to mono), its sample
rate, the latent `frame_rate` (frames per second, e.g. 44100 / 2048 for SAO
latents) and the number of `frames` wanted, and returns exactly that many
rows: `[frames, dim]` float32 (plus a `[frames]` mask where a frame can be
undefined). Audio shorter than `frames / frame_rate` seconds is padded with
silence; longer audio is ignored past the last frame.

Alignment: latent frame j is centred on time j / frame_rate (as the `mel`
codec's frames and a centred STFT) and summarises the audio in
[(j - 1/2) / frame_rate, (j + 1/2) / frame_rate). Features are analysed
with librosa at a finer hop (`ANALYSIS_HOP_S`, ~11.6 ms) and then pooled
over each latent frame's span (`pool_to_frames`).

Feature definitions (units are those the functions return; the model sees
them after `lmdm_jax.model.control_inputs.normalise`):

  loudness    [frames, 1] dB re full scale: 10 log10 of the frame's mean
              power (mean square of the samples, optionally A-weighted in
              the STFT domain), floored at `LOUDNESS_FLOOR_DB`. A full-scale
              sine reads -3.01 dB; halving the amplitude reads 6.02 dB less.
  brightness  [frames, 1] spectral centroid in normalised log-Hz:
              log2(centroid / 20 Hz) / log2(nyquist / 20 Hz), clipped to
              [0, 1]; 0 in silent frames.
  pitch       ([frames, 1] MIDI note number (69 = A4 = 440 Hz, fractional),
              [frames] voiced mask 1/0); 0 where unvoiced. librosa.pyin
              (default) or librosa.yin with a loudness gate for voicing.
  cqt_topk    [frames, n_bins] the paper's melody control: a CQT magnitude
              (12 bins per octave from `fmin`), and per frame only the k
              largest bins are kept, divided by that frame's largest
              magnitude (so the strongest kept bin is 1); everything else,
              and frames quieter than `CQT_SILENCE_DB` below the clip's
              peak, are 0.

`curve_to_frames` turns a drawn curve (a list of (time_s, value) points in
the units above) into the same per-frame form with a mask of the drawn span.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

ANALYSIS_HOP_S = 512 / 44100       # analysis hop in seconds (~11.6 ms)
LOUDNESS_FLOOR_DB = -100.0
BRIGHTNESS_FMIN_HZ = 20.0
CQT_SILENCE_DB = 60.0
PITCH_METHODS = ("pyin", "yin")


# -- validation -------------------------------------------------------------
def _mono(audio) -> np.ndarray:
  x = np.asarray(audio, np.float32)
  if x.ndim == 2:
    x = x.mean(axis=0)
  if x.ndim != 1:
    raise ValueError(f"audio must be [samples] or [channels, samples], got "
                     f"shape {np.shape(audio)}")
  if x.size == 0:
    raise ValueError("audio has no samples")
  if not np.isfinite(x).all():
    raise ValueError("audio holds NaN or inf samples")
  return x


def _check_rates(sample_rate, frame_rate, frames) -> None:
  if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
    raise ValueError(f"sample_rate must be a positive integer (Hz), got "
                     f"{sample_rate!r}")
  if not frame_rate > 0 or frame_rate * 2 > sample_rate:
    raise ValueError(f"frame_rate must be in (0, sample_rate / 2] frames per "
                     f"second, got {frame_rate!r}")
  if not (isinstance(frames, (int, np.integer)) and frames >= 1):
    raise ValueError(f"frames must be a positive integer, got {frames!r}")


def _hop(sample_rate: int, multiple: int = 1) -> int:
  """Analysis hop in samples: ~ANALYSIS_HOP_S, a multiple of `multiple`."""
  hop = max(int(round(ANALYSIS_HOP_S * sample_rate / multiple)), 1)
  return hop * multiple


def _fit(x: np.ndarray, sample_rate: int, frame_rate: float,
         frames: int) -> np.ndarray:
  """Pads (silence) or trims the audio to cover frames + 1/2 frame."""
  need = int(np.ceil((frames + 0.5) / frame_rate * sample_rate))
  if x.size < need:
    return np.pad(x, (0, need - x.size))
  return x[:need]


def pool_to_frames(values: np.ndarray, times: np.ndarray, frames: int,
                   frame_rate: float, weights=None) -> Tuple[np.ndarray,
                                                             np.ndarray]:
  """Averages analysis frames into latent frames.

  Args:
    values: [n] or [n, d] analysis-frame values at `times` [n] (seconds).
    frames: latent frames wanted; frame j pools times in
      [(j - 1/2) / frame_rate, (j + 1/2) / frame_rate).
    weights: optional [n] non-negative weights (e.g. a voiced mask).

  Returns:
    (pooled [frames, d] float32, total weight [frames]); a frame with no
    (weighted) analysis frame in its span takes the nearest analysis frame's
    value and weight.
  """
  v = np.asarray(values, np.float64)
  v2 = v[:, None] if v.ndim == 1 else v
  w = np.ones(len(times)) if weights is None else np.asarray(weights, float)
  idx = np.floor(np.asarray(times) * frame_rate + 0.5).astype(int)
  ok = (idx >= 0) & (idx < frames)
  tot = np.bincount(idx[ok], weights=w[ok], minlength=frames)
  cnt = np.bincount(idx[ok], minlength=frames)
  out = np.stack([np.bincount(idx[ok], weights=(v2[:, d] * w)[ok],
                              minlength=frames)
                  for d in range(v2.shape[1])], axis=-1)
  out = out / np.maximum(tot, 1e-12)[:, None]
  empty = cnt == 0
  if empty.any():
    centres = np.arange(frames) / frame_rate
    near = np.abs(np.asarray(times)[None, :] - centres[empty, None]).argmin(1)
    out[empty] = v2[near]
    tot[empty] = w[near]
  return out.astype(np.float32), tot / np.maximum(cnt, 1)


# -- features ---------------------------------------------------------------
def _stft_power(x, sample_rate):
  import librosa
  hop = _hop(sample_rate)
  n_fft = 4 * hop
  s = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, center=True)) ** 2
  times = librosa.frames_to_time(np.arange(s.shape[1]), sr=sample_rate,
                                 hop_length=hop)
  freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft)
  return s, times, freqs, n_fft


def loudness(audio, sample_rate: int, frame_rate: float, frames: int,
             a_weighting: bool = False) -> np.ndarray:
  """Loudness [frames, 1] in dB re full scale (see the module docstring).

  The frame's power is the mean square of its samples (Parseval over a
  Hann-windowed STFT), averaged over the latent frame's span before the
  log; with `a_weighting` each frequency bin is weighted by the IEC 61672
  A-curve (librosa.A_weighting) first.
  """
  _check_rates(sample_rate, frame_rate, frames)
  x = _fit(_mono(audio), sample_rate, frame_rate, frames)
  s, times, freqs, n_fft = _stft_power(x, sample_rate)
  if a_weighting:
    import librosa
    s = s * librosa.db_to_power(librosa.A_weighting(
        np.maximum(freqs, 1e-3)))[:, None]
  # Parseval with the window: sum_k |X_k|^2 (two-sided) = n_fft sum w^2 x^2.
  w = np.hanning(n_fft + 1)[:-1]
  two_sided = 2.0 * s.sum(axis=0) - s[0] - s[-1]
  power = two_sided / (n_fft * np.square(w).sum())
  pooled, _ = pool_to_frames(power, times, frames, frame_rate)
  floor = 10 ** (LOUDNESS_FLOOR_DB / 10)
  return (10.0 * np.log10(np.maximum(pooled, floor))).astype(np.float32)


def brightness(audio, sample_rate: int, frame_rate: float,
               frames: int) -> np.ndarray:
  """Brightness [frames, 1]: spectral centroid, normalised log-Hz in [0, 1].

  The centroid is taken of the power spectrum pooled over the latent frame
  (so loud analysis frames count more); 0 where the frame is silent
  (below `LOUDNESS_FLOOR_DB`).
  """
  _check_rates(sample_rate, frame_rate, frames)
  x = _fit(_mono(audio), sample_rate, frame_rate, frames)
  s, times, freqs, _ = _stft_power(x, sample_rate)
  pooled, _ = pool_to_frames(s.T, times, frames, frame_rate)   # [frames, F]
  total = pooled.sum(axis=1)
  centroid = (pooled * freqs[None]).sum(axis=1) / np.maximum(total, 1e-30)
  lo, hi = np.log2(BRIGHTNESS_FMIN_HZ), np.log2(sample_rate / 2)
  b = (np.log2(np.maximum(centroid, 1e-3)) - lo) / (hi - lo)
  # Mean power per bin below the floor: silent.
  silent = total / len(freqs) < 10 ** (LOUDNESS_FLOOR_DB / 10)
  b = np.where(silent, 0.0, np.clip(b, 0.0, 1.0))
  return b[:, None].astype(np.float32)


def pitch(audio, sample_rate: int, frame_rate: float, frames: int,
          method: str = "pyin", fmin: float = 65.4, fmax: float = 2093.0,
          gate_db: float = -50.0) -> Tuple[np.ndarray, np.ndarray]:
  """Pitch as (midi [frames, 1], voiced [frames]) (see module docstring).

  method "pyin": librosa.pyin's voiced flags; "yin": librosa.yin with a frame
  voiced when its loudness is above `gate_db` dB. A latent frame is voiced
  when at least half of its analysis frames are; its MIDI number is the
  mean over its voiced analysis frames (in MIDI, i.e. log-frequency).
  fmin/fmax (Hz) bound the search (default C2..C7).
  """
  import librosa
  _check_rates(sample_rate, frame_rate, frames)
  if method not in PITCH_METHODS:
    raise ValueError(f"pitch method must be one of {PITCH_METHODS}, got "
                     f"{method!r}")
  if not 0 < fmin < fmax < sample_rate / 2:
    raise ValueError(f"need 0 < fmin < fmax < nyquist, got fmin={fmin}, "
                     f"fmax={fmax}")
  x = _fit(_mono(audio), sample_rate, frame_rate, frames)
  hop = _hop(sample_rate)
  frame_length = max(4 * hop, int(2 ** np.ceil(np.log2(
      2.5 * sample_rate / fmin))))
  if method == "pyin":
    f0, voiced, _ = librosa.pyin(x, fmin=fmin, fmax=fmax, sr=sample_rate,
                                 frame_length=frame_length, hop_length=hop,
                                 center=True)
  else:
    f0 = librosa.yin(x, fmin=fmin, fmax=fmax, sr=sample_rate,
                     frame_length=frame_length, hop_length=hop, center=True)
    rms = librosa.feature.rms(y=x, frame_length=frame_length, hop_length=hop,
                              center=True)[0]
    n = min(len(rms), len(f0))
    f0, rms = f0[:n], rms[:n]
    voiced = 20 * np.log10(np.maximum(rms, 1e-10)) + 3.01 > gate_db
  voiced = np.asarray(voiced, bool) & np.isfinite(f0)
  times = librosa.frames_to_time(np.arange(len(f0)), sr=sample_rate,
                                 hop_length=hop)
  midi = np.where(voiced, librosa.hz_to_midi(np.where(voiced, f0, 440.0)),
                  0.0)
  v_pooled, frac = pool_to_frames(voiced.astype(float), times, frames,
                                  frame_rate)
  m_pooled, _ = pool_to_frames(midi, times, frames, frame_rate,
                               weights=voiced.astype(float))
  mask = (v_pooled[:, 0] >= 0.5).astype(np.float32)
  return (m_pooled * mask[:, None]).astype(np.float32), mask


def cqt_topk(audio, sample_rate: int, frame_rate: float, frames: int,
             k: int = 4, n_bins: int = 84, fmin: float = 32.70) -> np.ndarray:
  """Top-k CQT melody [frames, n_bins] (see the module docstring).

  12 bins per octave from fmin (default C1, 32.7 Hz; 84 bins reach B7).
  Magnitudes are averaged over the latent frame's span before the top-k.
  """
  import librosa
  _check_rates(sample_rate, frame_rate, frames)
  if not (isinstance(k, (int, np.integer)) and 1 <= k <= n_bins):
    raise ValueError(f"k must be an integer in [1, n_bins={n_bins}], got "
                     f"{k!r}")
  top = fmin * 2 ** ((n_bins - 1) / 12)
  if top >= sample_rate / 2:
    raise ValueError(f"n_bins={n_bins} from fmin={fmin} Hz reaches {top:.0f}"
                     f" Hz, above the nyquist {sample_rate / 2:.0f} Hz")
  x = _fit(_mono(audio), sample_rate, frame_rate, frames)
  octaves = int(np.ceil(n_bins / 12))
  hop = _hop(sample_rate, 2 ** max(octaves - 1, 0))
  c = np.abs(librosa.cqt(x, sr=sample_rate, hop_length=hop, fmin=fmin,
                         n_bins=n_bins, bins_per_octave=12))
  times = librosa.frames_to_time(np.arange(c.shape[1]), sr=sample_rate,
                                 hop_length=hop)
  mag, _ = pool_to_frames(c.T, times, frames, frame_rate)     # [frames, n]
  order = np.argsort(-mag, axis=1, kind="stable")[:, :k]
  keep = np.zeros_like(mag, bool)
  np.put_along_axis(keep, order, True, axis=1)
  peak = mag.max(axis=1, keepdims=True)
  out = np.where(keep, mag / np.maximum(peak, 1e-12), 0.0)
  loud = peak[:, 0] > mag.max() * 10 ** (-CQT_SILENCE_DB / 20)
  return (out * loud[:, None]).astype(np.float32)


# -- drawn curves -----------------------------------------------------------
def curve_to_frames(points: Sequence[Tuple[float, float]], frames: int,
                    frame_rate: float, kind: str = "linear",
                    hold: bool = False) -> Tuple[np.ndarray, np.ndarray]:
  """A drawn curve -> (values [frames, 1], mask [frames]).

  Args:
    points: (time_s, value) pairs, times strictly increasing, values in the
      unit of the feature they stand for (dB, normalised log-Hz, MIDI).
    frames: output frames; frame j is sampled at time j / frame_rate.
    kind: "linear" (interpolate between points) or "step" (hold each value
      until the next point).
    hold: extend the first/last value over the whole clip (mask 1
      everywhere); by default frames outside [first, last] time have mask 0
      (the control is absent there) and value 0.
  """
  if not (isinstance(frames, (int, np.integer)) and frames >= 1):
    raise ValueError(f"frames must be a positive integer, got {frames!r}")
  if not frame_rate > 0:
    raise ValueError(f"frame_rate must be positive, got {frame_rate!r}")
  if kind not in ("linear", "step"):
    raise ValueError(f"kind must be 'linear' or 'step', got {kind!r}")
  p = np.asarray(points, np.float64)
  if p.ndim != 2 or p.shape[1] != 2 or len(p) < 1:
    raise ValueError(f"points must be a non-empty list of (time_s, value) "
                     f"pairs, got shape {p.shape}")
  if not np.isfinite(p).all():
    raise ValueError("points hold NaN or inf")
  t, v = p[:, 0], p[:, 1]
  if np.any(np.diff(t) <= 0):
    raise ValueError("point times must be strictly increasing")
  ft = np.arange(frames) / frame_rate
  if kind == "linear":
    out = np.interp(ft, t, v)
  else:
    out = v[np.clip(np.searchsorted(t, ft, side="right") - 1, 0, len(v) - 1)]
  eps = 1e-9
  mask = np.ones(frames) if hold else (
      (ft >= t[0] - eps) & (ft <= t[-1] + eps)).astype(np.float64)
  out = np.where(mask > 0, out, 0.0)
  return out[:, None].astype(np.float32), mask.astype(np.float32)
