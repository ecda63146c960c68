"""benchmarks/sketch_seams.py: a burst at every block start is found in the
band it was put in and not in another; a missing sketch file is refused
before anything is generated."""
import numpy as np
import pytest

from helpers import load_benchmark

SR, BLOCK = 44100, 24 * 2048


def _stream_with_bursts(freq, amp=0.3, blocks=8, seed=0):
  rng = np.random.default_rng(seed)
  n = blocks * BLOCK
  x = 0.05 * rng.standard_normal((2, n))
  t = np.arange(4096) / SR
  burst = amp * np.sin(2 * np.pi * freq * t) * np.hanning(2 * 4096)[4096:]
  for b in range(blocks):
    x[:, b * BLOCK:b * BLOCK + 4096] += burst
  return x


def test_a_burst_is_found_in_its_band_only():
  ss = load_benchmark("sketch_seams")
  flat = ss.band_seam(_stream_with_bursts(600.0, amp=0.0), SR, BLOCK, 300,
                      1250)
  assert abs(flat) < 0.5
  mid = ss.band_seam(_stream_with_bursts(600.0), SR, BLOCK, 300, 1250)
  high = ss.band_seam(_stream_with_bursts(4000.0), SR, BLOCK, 300, 1250)
  assert mid < -6.0            # the burst, seen as a negative dip
  assert abs(high) < 0.5       # a burst at 4 kHz is not in 300-1250 Hz


def test_a_missing_sketch_is_refused(tmp_path):
  ss = load_benchmark("sketch_seams")
  with pytest.raises(FileNotFoundError, match="no such file"):
    ss.run(["unused"], [str(tmp_path / "nope.flac")], [0], 5.0,
           str(tmp_path / "w"))
