"""The output stage: gain and a true-peak limiter, block by block.

    stage = OutputStage(sample_rate=44100, channels=2, gain_db=-21.0)
    for block in blocks:                     # [channels, n] float32
      out = stage.process(block)             # never above the ceiling
    stage.levels()                           # peak, RMS, gain reduction

Everything a listener hears or a recording keeps passes through one stage
(lmdm_jax/live/player.py; `lmdm live` and `lmdm generate`), so no path
clips.

Gain. Decoded blocks of the shipped demo model peak at 11-27 (x full scale)
for "slow Bach chorale for string ensemble" (+9.8 dBFS RMS over 22 s) but
at 0.37 for "ragtime piano" (-27.6 dBFS RMS): the level depends on the
prompt by 37 dB, so no fixed gain suits the model. By default
(`gain_db=None`) the gain follows a running estimate of the music's level,
the automatic gain control of broadcast chains: the level of each block
(RMS in dB; blocks below -60 dBFS are gated out) is smoothed with a 1 s
time constant when the music gets louder and 4 s when it gets quieter
(dynamics within a few seconds stay, a prompt change's 37 dB is caught up
in about 10 s) and brought to `target_rms_dbfs` (-20 dBFS, about 18 dB of
headroom for the demo's crest factor), the gain ramped linearly across each
block; the first block sets the estimate. A model whose level is known gives a fixed
`gain_db` (a package's `defaults.output_gain_db`, `for_package`). Either
way the limiter catches what is left, so music is rarely limited and never
clipped.

Limiter (what broadcast true-peak limiters do, ITU-R BS.1770-4 annex 2):
- detection: each sample's level is the largest |x| of both channels
  (linked gain, the stereo image stays put) at the sample and at the 4x
  oversampled points on either side of it (a 48-tap polyphase FIR), so
  peaks between samples are caught (what a DAC's reconstruction makes);
- gain: the largest gain <= 1 that keeps each sample at or below the
  ceiling; attack: a look-ahead of `lookahead_ms` inside the block (minimum
  over the next L samples, then an L-sample moving average: the gain ramps
  down before a peak and is never above the needed gain); release: a
  constant `release_db_per_s` in dB (a running min of gain_dB[j] + rate *
  (i - j), vectorised as a cumulative minimum), carried across blocks;
- no look-back beyond the stream: the state carried between blocks is the
  gain in force and the last samples (filter history); nothing before the
  stream's first block is assumed, and nothing after the block is seen (a
  peak at a block's first samples gets an instant gain step, not a ramp).
- a final hard clip at the ceiling catches float round-off, and non-finite
  samples (a broken decoder) are zeroed and counted before anything else.

Shapes: blocks are [channels, samples] float; the output is float32 of the
same shape. Pure numpy/scipy (host side).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

OVERSAMPLE = 4
TAPS_PER_PHASE = 12


def _interpolator() -> np.ndarray:
  """[OVERSAMPLE, TAPS_PER_PHASE] weights of a 4x interpolator.

  Row p gives the value at y[i - 1] + p/4 of a sample period from the taps
  y[i - 6 .. i + 5]: a Kaiser-windowed sinc (cutoff at the original
  Nyquist), each row normalised to unit DC gain (row 0 is y[i - 1] itself).
  """
  half = TAPS_PER_PHASE // 2
  k = np.arange(TAPS_PER_PHASE)
  rows = []
  for p in range(OVERSAMPLE):
    t = (half - 1) + p / OVERSAMPLE - k          # distance to each tap
    edge = half + 1.0
    w = np.sinc(t) * np.i0(8.0 * np.sqrt(1.0 - (t / edge) ** 2)) / np.i0(8.0)
    rows.append(w / w.sum())
  return np.stack(rows)


def db(x: float) -> float:
  return 20.0 * math.log10(max(float(x), 1e-12))


class OutputStage:
  """Streaming gain + true-peak limiter for [channels, n] blocks."""

  def __init__(self, sample_rate: int, channels: int,
               gain_db: Optional[float] = None,
               ceiling_dbtp: float = -1.0, lookahead_ms: float = 1.5,
               release_db_per_s: float = 30.0,
               target_rms_dbfs: float = -20.0, auto_attack_s: float = 1.0,
               auto_release_s: float = 4.0, max_auto_gain_db: float = 20.0):
    if sample_rate <= 0 or channels <= 0:
      raise ValueError(f"sample_rate and channels must be positive, got "
                       f"{sample_rate}, {channels}")
    if gain_db is not None and (not math.isfinite(gain_db) or
                                not -120 <= gain_db <= 60):
      raise ValueError(f"gain_db must be in [-120, 60], got {gain_db}")
    if not -60 <= ceiling_dbtp <= 0:
      raise ValueError(f"ceiling_dbtp must be in [-60, 0], got "
                       f"{ceiling_dbtp}")
    if not 0 < lookahead_ms <= 50 or not release_db_per_s > 0:
      raise ValueError("lookahead_ms must be in (0, 50] and "
                       "release_db_per_s > 0")
    self.sample_rate, self.channels = int(sample_rate), int(channels)
    self.gain_db = gain_db
    self.ceiling = 10.0 ** (ceiling_dbtp / 20.0)
    self.lookahead = max(1, int(round(lookahead_ms * 1e-3 * sample_rate)))
    self.release = release_db_per_s / sample_rate        # dB per sample
    self.target_rms = 10.0 ** (target_rms_dbfs / 20.0)
    self.auto_attack_s, self.auto_release_s = auto_attack_s, auto_release_s
    self.max_auto_gain_db = max_auto_gain_db
    self._phases = _interpolator()
    self._hist = np.zeros((channels, TAPS_PER_PHASE), np.float64)
    self._gain_db_now = 0.0          # limiter gain at the last sample (<= 0)
    self._level_db = None            # running block level, dB (auto gain)
    self._auto_db = None             # makeup gain of the last block (auto)
    self.blocks = 0
    self.samples = 0
    self.limited_samples = 0
    self.nonfinite_samples = 0
    self.peak_in = 0.0
    self.peak_out = 0.0
    self.true_peak_out = 0.0
    self.max_reduction_db = 0.0
    self._sum_sq_out = 0.0
    self.last: dict = {}

  # -- gain ------------------------------------------------------------------
  def _makeup_db(self, x: np.ndarray) -> np.ndarray:
    """Per-sample makeup gain in dB for block x (ramped when automatic)."""
    n = x.shape[1]
    if self.gain_db is not None:
      return np.full(n, self.gain_db)
    ms = float(np.mean(np.square(x))) if n else 0.0
    block_s = n / self.sample_rate
    if ms >= 1e-6:                    # gate: below -60 dBFS, keep the gain
      level = 10.0 * math.log10(ms)
      if self._level_db is None:
        self._level_db = level
      else:
        tau = (self.auto_attack_s if level > self._level_db
               else self.auto_release_s)
        self._level_db += (1.0 - math.exp(-block_s / tau)) * (
            level - self._level_db)
    want = (0.0 if self._level_db is None else
            db(self.target_rms) - self._level_db)
    want = min(want, self.max_auto_gain_db)
    start = want if self._auto_db is None else self._auto_db
    self._auto_db = want
    return np.linspace(start, want, n, endpoint=False) if n else np.zeros(0)

  # -- detection ---------------------------------------------------------------
  def _detect(self, y: np.ndarray) -> np.ndarray:
    """[n] level per sample: max over channels of |y| and of the 4x
    oversampled points within one sample on either side."""
    n = y.shape[1]
    half = TAPS_PER_PHASE // 2
    # History on the left (the stream so far), the block's last sample held
    # on the right (the next block is not known yet).
    ext = np.concatenate([self._hist[:, -half:], y,
                          np.repeat(y[:, -1:], half, axis=1)], axis=1)
    level = np.abs(y).max(axis=0)
    # between[i] = max |sum_k ext[c, i + k] phase_p[k]|: the oversampled
    # points in the gap between y[i-1] and y[i], i = 0..n.
    acc = np.zeros((OVERSAMPLE - 1,) + (ext.shape[0], n + 1))
    for k in range(TAPS_PER_PHASE):           # 12 shifted adds: the fastest
      acc += self._phases[1:, k, None, None] * ext[None, :, k:k + n + 1]
    between = np.abs(acc).max(axis=(0, 1))
    return np.maximum(level, np.maximum(between[:n], between[1:n + 1]))

  # -- processing --------------------------------------------------------------
  def process(self, block: np.ndarray) -> np.ndarray:
    """One block [channels, n] -> limited float32 [channels, n]."""
    x = np.asarray(block, np.float64)
    if x.ndim != 2 or x.shape[0] != self.channels:
      raise ValueError(f"output stage takes [{self.channels}, samples] "
                       f"blocks, got shape {x.shape}")
    n = x.shape[1]
    if n == 0:
      return np.zeros((self.channels, 0), np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
      self.nonfinite_samples += int(bad.sum())
      x = np.where(bad, 0.0, x)
    self.peak_in = max(self.peak_in, float(np.abs(x).max()))
    makeup = self._makeup_db(x)
    y = x * 10.0 ** (makeup / 20.0)
    level = self._detect(y)
    need = np.minimum(1.0, self.ceiling / np.maximum(level, 1e-30))
    # Attack: min over the next L samples (within the block), then an
    # L-sample moving average (each average's window holds sample i).
    L = min(self.lookahead, n)
    padded = np.concatenate([need, np.full(L - 1, need[-1])])
    ahead = np.lib.stride_tricks.sliding_window_view(padded, L).min(axis=1)
    lead = np.concatenate([np.full(L - 1, ahead[0]), ahead])
    csum = np.concatenate([[0.0], np.cumsum(lead)])
    smooth = (csum[L:] - csum[:-L]) / L
    g_db = 20.0 * np.log10(np.maximum(np.minimum(smooth, need), 1e-12))
    # Release: g[i] = min(g_db[i], min_j<i (g[j]) + rate * (i - j)), and
    # the gain in force before the block, rising at the same rate; <= 0 dB.
    i = np.arange(n)
    carried = self._gain_db_now + self.release * (i + 1)
    env = np.minimum.accumulate(g_db - self.release * i) + self.release * i
    gain_db = np.minimum(np.minimum(env, carried), 0.0)
    self._gain_db_now = float(gain_db[-1])
    out = np.clip(y * 10.0 ** (gain_db / 20.0), -self.ceiling, self.ceiling)
    self._hist = np.concatenate([self._hist, out], axis=1)[
        :, -TAPS_PER_PHASE:]
    # Levels.
    reduction = max(0.0, -float(gain_db.min()))
    peak = float(np.abs(out).max())
    rms = float(np.sqrt(np.mean(np.square(out))))
    self.blocks += 1
    self.samples += n
    self.limited_samples += int((gain_db < -0.01).sum())
    self.peak_out = max(self.peak_out, peak)
    self.max_reduction_db = max(self.max_reduction_db, reduction)
    self._sum_sq_out += float(np.sum(np.square(out))) / self.channels
    self.last = {"peak_dbfs": db(peak), "rms_dbfs": db(rms),
                 "gain_db": float(makeup[-1]),
                 "gain_reduction_db": reduction,
                 "limited_fraction": float((gain_db < -0.01).mean())}
    return out.astype(np.float32)

  def levels(self) -> dict:
    """Levels of everything processed so far (JSON-ready)."""
    rms = math.sqrt(self._sum_sq_out / self.samples) if self.samples else 0.0
    return {"blocks": self.blocks, "samples": self.samples,
            "gain_db": (self.gain_db if self.gain_db is not None
                        else self._auto_db),
            "gain": "fixed" if self.gain_db is not None else "auto",
            "ceiling_dbtp": db(self.ceiling),
            "peak_in_dbfs": db(self.peak_in),
            "peak_dbfs": db(self.peak_out),
            "rms_dbfs": db(rms),
            "max_gain_reduction_db": self.max_reduction_db,
            "limited_fraction": (self.limited_samples / self.samples
                                 if self.samples else 0.0),
            "nonfinite_samples": self.nonfinite_samples}


def true_peak(audio: np.ndarray) -> float:
  """Max |x| of [channels, n] audio 4x oversampled (BS.1770-style meter)."""
  x = np.asarray(audio, np.float64)
  if x.size == 0:
    return 0.0
  from scipy.signal import resample_poly
  up = resample_poly(x, OVERSAMPLE, 1, axis=-1)
  return float(max(np.abs(x).max(), np.abs(up).max()))


def for_package(pkg, codec) -> OutputStage:
  """The stage a model package calls for: its calibrated gain
  (`defaults.output_gain_db`, measured when it was shipped: docs/live.md),
  or a running estimate when the package has none."""
  gain = pkg.defaults.get("output_gain_db")
  return OutputStage(codec.sample_rate, codec.channels,
                     gain_db=None if gain is None else float(gain))
