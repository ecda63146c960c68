"""benchmarks/semitone_onsets.py's onset-envelope helpers: the flux
detector finds tone bursts where they start and nowhere else, the envelope
fades before an onset and attacks at it, one onset per frame is kept."""

import numpy as np
import pytest

from helpers import load_benchmark


def _load():
  return load_benchmark("semitone_onsets")


def test_flux_onsets_envelope_and_one_per_frame():
  so, sr = _load(), 44100
  starts = [0.5, 1.3, 2.2, 3.0]
  t = np.arange(4 * sr) / sr
  x = np.zeros_like(t)
  for s0, f in zip(starts, (220.0, 330.0, 262.0, 392.0)):
    # a sharp start and a smooth decay (an abrupt end is a click: an
    # onset too)
    env = np.clip((t - s0) / 0.002, 0, 1) * np.exp(-6 * np.clip(t - s0, 0,
                                                                None))
    x += 0.3 * env * np.sin(2 * np.pi * f * t)
  times, strength = so.flux_onsets(np.stack([x, x]), sr, delta=1.0)
  strength = strength[times < 3.9]          # the file's end is a cut
  times = times[times < 3.9]
  assert len(times) == len(starts) and len(strength) == len(times)
  assert np.max(np.abs(times - np.asarray(starts))) < 0.03
  g = so.fade_envelope(sr, [0.5], sr, fade=2048, dip=0.2)
  p = int(round(0.5 * sr / 128)) * 128
  assert g[0] == 1.0 and g[p - 2049] == 1.0
  assert g[p - 1] == pytest.approx(0.2, abs=1e-3) and g[p] == 0.2
  assert g[p + 64] == 1.0 and np.all(np.diff(g[p - 2048:p]) < 0)
  keep = so.one_per_frame([0.01, 0.02, 0.1], [1.0, 5.0, 2.0], sr, 2048)
  np.testing.assert_allclose(keep, [0.02, 0.1])
