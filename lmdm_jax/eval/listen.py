"""Listening by numbers: level, mono compatibility, clipping, tonality and
block seams of a generated stream.

A stream can pass every test and still be a defect to a listener: silent,
anti-phase (the mono mix cancels), clipped, white noise, or dipping at
every block boundary because the block-wise decode does not join up. Each
function takes audio as [channels, samples] float (channels 1 or 2).

`seam_profile` measures the level around every position of the block
period: frames of `frame_s` are averaged over all blocks at the same phase
(position modulo the block length), so the boundary's own level stands
against the same stream's level everywhere else in a block. A decode that
joins blocks cleanly has a flat profile; mel's Griffin-Lim per block made
a 5-21 dB dip about 50 ms long right after each seam (issue 19).
"""
from __future__ import annotations

import numpy as np


def _db(power):
  return 10.0 * np.log10(np.maximum(power, 1e-20))


def _check(audio) -> np.ndarray:
  a = np.asarray(audio, np.float64)
  if a.ndim != 2 or a.shape[0] not in (1, 2):
    raise ValueError(f"audio must be [channels (1 or 2), samples], got "
                     f"shape {a.shape}")
  return a


def levels(audio) -> dict:
  """Stereo and mono-mix RMS (dBFS), their difference, mid/side balance and
  the L/R correlation of [2, samples] audio (mono input: side absent)."""
  a = _check(audio)
  stereo = _db(np.mean(a ** 2))
  if a.shape[0] == 1:
    return {"rms_dbfs": float(stereo), "mono_dbfs": float(stereo),
            "mono_loss_db": 0.0}
  mid, side = 0.5 * (a[0] + a[1]), 0.5 * (a[0] - a[1])
  mono = _db(np.mean(mid ** 2))
  sl, sr = a[0] - a[0].mean(), a[1] - a[1].mean()
  den = np.sqrt(np.sum(sl ** 2) * np.sum(sr ** 2))
  return {"rms_dbfs": float(stereo), "mono_dbfs": float(mono),
          # stereo level minus mono-mix level: 0 for L = R, +3 dB for
          # uncorrelated channels, large when L ~ -R (anti-phase).
          "mono_loss_db": float(stereo - mono),
          "side_minus_mid_db": float(_db(np.mean(side ** 2)) - mono),
          "lr_correlation": float(np.sum(sl * sr) / den) if den > 0 else 0.0}


def clipping(audio, threshold: float = 0.999) -> dict:
  """Fraction of samples at or above `threshold` full scale, and the peak."""
  a = np.abs(_check(audio))
  return {"peak": float(a.max(initial=0.0)),
          "clipped_fraction": float(np.mean(a >= threshold))}


def spectral_flatness(audio) -> float:
  """Median spectral flatness of the mono mix (0 tonal, ~0.5 white noise;
  a ratio of means, so independent of the sample rate)."""
  import librosa
  m = _check(audio).mean(0).astype(np.float32)
  return float(np.median(librosa.feature.spectral_flatness(
      y=m, n_fft=2048, hop_length=1024)))


def seam_profile(audio, sr: int, block_samples: int,
                 frame_s: float = 0.05, offset: int = 0) -> dict:
  """Level by position within the block period.

  audio [channels, samples]; blocks start at `offset + k * block_samples`.
  The period is cut into frames of about `frame_s` (the block length is
  divided evenly); each frame's power is summed over every whole block,
  so the profile is the stream's level at that phase in dB. Returns the
  profile, `seam_dip_db` (median level of the frames away from the seam
  minus the level of the frame that starts at the seam: positive is a dip),
  the largest such dip at any phase and where, and how many blocks.
  """
  a = _check(audio)
  if block_samples <= 0:
    raise ValueError(f"block_samples must be > 0, got {block_samples}")
  x = a[:, offset:]
  blocks = x.shape[1] // block_samples
  if blocks < 2:
    raise ValueError(f"need >= 2 whole blocks of {block_samples} samples "
                     f"after offset {offset}, got {x.shape[1]} samples")
  n = max(1, int(round(block_samples / (frame_s * sr))))
  edges = np.linspace(0, block_samples, n + 1).astype(int)
  per = x[:, :blocks * block_samples].reshape(a.shape[0], blocks,
                                             block_samples)
  power = np.stack([np.mean(per[:, :, s:e] ** 2)
                    for s, e in zip(edges[:-1], edges[1:])])
  prof = _db(power)
  # Away from the seam: every frame but the first two and the last one.
  body = np.median(prof[2:-1]) if n > 4 else np.median(prof)
  dips = body - prof
  worst = int(np.argmax(dips))
  return {"frame_s": float(block_samples / n / sr), "blocks": int(blocks),
          "profile_db": [float(v) for v in prof],
          "seam_dip_db": float(dips[0]),
          "max_dip_db": float(dips[worst]),
          "max_dip_at_s": float(edges[worst] / sr)}


def report(audio, sr: int, block_samples: int | None = None,
           offset: int = 0) -> dict:
  """Every check above for one stream: levels, clipping, flatness and,
  with `block_samples`, the seam profile."""
  out = {"seconds": float(_check(audio).shape[1] / sr)}
  out.update(levels(audio))
  out.update(clipping(audio))
  out["spectral_flatness_median"] = spectral_flatness(audio)
  if block_samples:
    s = seam_profile(audio, sr, block_samples, offset=offset)
    out.update({k: s[k] for k in ("seam_dip_db", "max_dip_db",
                                  "max_dip_at_s", "blocks")})
  return out
