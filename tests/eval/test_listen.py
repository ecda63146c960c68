"""lmdm_jax.eval.listen: levels, mono compatibility, clipping and seams on
signals whose answers are known."""
import numpy as np
import pytest

from lmdm_jax.eval import listen

SR = 44100


def _sine(seconds, f=440.0, amp=0.5):
  t = np.arange(int(seconds * SR)) / SR
  return amp * np.sin(2 * np.pi * f * t)


def test_mono_compatibility_of_in_phase_anti_phase_and_uncorrelated():
  s = _sine(1.0)
  same = listen.levels(np.stack([s, s]))
  assert abs(same["mono_loss_db"]) < 1e-9
  assert same["lr_correlation"] > 0.999
  assert same["rms_dbfs"] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)),
                                           abs=0.01)
  anti = listen.levels(np.stack([s, -s]))
  assert anti["mono_loss_db"] > 100 and anti["lr_correlation"] < -0.999
  assert anti["side_minus_mid_db"] > 100
  rng = np.random.default_rng(0)
  noise = listen.levels(0.1 * rng.standard_normal((2, SR)))
  assert noise["mono_loss_db"] == pytest.approx(3.01, abs=0.1)
  assert listen.levels(s[None])["mono_loss_db"] == 0.0


def test_clipping_counts_full_scale_samples():
  x = np.stack([np.clip(4 * _sine(1.0), -1, 1)] * 2)   # |sin| >= 1/2: 2/3
  c = listen.clipping(x)
  assert c["peak"] == 1.0
  assert c["clipped_fraction"] == pytest.approx(2 / 3, abs=0.01)
  assert listen.clipping(0.5 * x)["clipped_fraction"] == 0.0


@pytest.mark.parametrize("offset", [0, 3000])
def test_seam_profile_finds_a_dip_at_each_block_start(offset):
  block = 49152                                   # the demo's 24 frames
  s = np.stack([_sine(12.0)] * 2)
  flat = listen.seam_profile(s, SR, block, offset=offset)
  assert abs(flat["seam_dip_db"]) < 0.5 and flat["max_dip_db"] < 0.5
  dipped = s.copy()
  gap = int(0.05 * SR)
  for start in range(offset, s.shape[1], block):
    dipped[:, start:start + gap] *= 0.1            # -20 dB for 50 ms
  d = listen.seam_profile(dipped, SR, block, offset=offset)
  assert d["seam_dip_db"] > 15 and d["max_dip_at_s"] == 0.0
  assert d["blocks"] == (s.shape[1] - offset) // block
  # Measured from the wrong origin, the dip is found elsewhere in the block.
  wrong = listen.seam_profile(dipped, SR, block, offset=offset + block // 2)
  assert abs(wrong["seam_dip_db"]) < 0.5 and wrong["max_dip_db"] > 10


def test_report_and_bad_input():
  s = np.stack([_sine(3.0)] * 2)
  r = listen.report(s, SR, block_samples=SR // 2)
  assert r["seconds"] == 3.0 and r["spectral_flatness_median"] < 0.01
  assert {"seam_dip_db", "mono_loss_db", "clipped_fraction"} <= set(r)
  with pytest.raises(ValueError, match="channels"):
    listen.levels(np.zeros((3, 10)))
  with pytest.raises(ValueError, match="2 whole blocks"):
    listen.seam_profile(s, SR, 2 * SR)
  with pytest.raises(ValueError, match="block_samples"):
    listen.seam_profile(s, SR, 0)
