"""The JAX musicnn port against the original TF musicnn on fixed inputs.

tests/data/musicnn_reference.npz was written by tools/musicnn_reference.py
with musicnn 0.1.0 on TF 2.21 (its own extractor code and graph); no
TensorFlow is needed here. Measured (jax 0.10.2, CPU) over 4 signals x 2
models, 7 patches: log-mel bit-identical (float16, inf included; another
FFT library may flip rare elements by one float16 ulp: tolerated below);
max |port - TF|: taggram 3.8e-6, penultimate 1.9e-5, mean_pool 7.0e-5,
max_pool 1.7e-4 (values up to 43, i.e. 4e-6 relative).
"""
import os
from importlib import resources

import numpy as np
import pytest

from lmdm_jax.eval import musicnn as mn

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "data",
                       "musicnn_reference.npz")
# max |port - reference| allowed (absolute; the pooled features reach 43
# and their float32 round-off grows with them).
TOL = {"taggram": 1e-5, "penultimate": 1e-4, "mean_pool": 3e-4,
       "max_pool": 3e-4}


@pytest.fixture(scope="module")
def fx():
  with np.load(FIXTURE, allow_pickle=False) as z:
    return {k: z[k] for k in z.files}


def _audio(fx, sig):
  return fx[f"{sig}/audio"].astype(np.float32) / 32768


def _finite_signals(fx):
  return [str(s) for s in fx["signals"] if s != "loud_sine"]


def test_fixture_is_small_and_complete(fx):
  assert os.path.getsize(FIXTURE) < 1_000_000
  assert set(fx["models"]) == set(mn.MODELS)
  assert len(_finite_signals(fx)) >= 4
  assert fx["chirp/batch"].shape == (2, mn.PATCH_FRAMES, mn.N_MELS)


def _assert_float16_identical_but_rare_ulps(got, want, err_msg=""):
  """Bit-identical float16 except for at most 1 in 2000 elements that are
  1 float16 ulp off; inf exactly where the reference has inf.

  Why the slack: librosa's float32 mel power differs in its last bits
  between numpy/scipy FFT versions, and a value sitting on a float16
  rounding boundary then flips by one ulp (a fresh install measured 1 of
  19,296 elements). A real change of the preprocessing (another mel scale,
  float32 instead of float16 steps, a different log or offset) moves a
  large share of elements or moves them by more than one ulp."""
  want16 = np.asarray(want).astype(np.float16)
  got16 = np.asarray(got).astype(np.float16)
  assert got16.shape == want16.shape, err_msg
  np.testing.assert_array_equal(np.isinf(got16), np.isinf(want16),
                                err_msg=f"{err_msg}: inf positions")
  fin = np.isfinite(want16)
  diff = np.abs(got16[fin].astype(np.float32) - want16[fin].astype(np.float32))
  ulp = np.spacing(np.abs(want16[fin])).astype(np.float32)
  assert (diff <= ulp).all(), (err_msg, float((diff / ulp).max()))
  off = int((diff > 0).sum())
  assert off <= diff.size // 2000, (err_msg, off, diff.size)


def test_log_mel_and_patches_bit_identical(fx):
  """musicnn's float16 preprocessing, including its overflow to inf
  (identical up to rare 1-ulp flips that depend on the FFT library)."""
  for sig in fx["signals"]:
    mel = mn.log_mel(_audio(fx, sig), exact=True)
    assert mel.dtype == np.float16
    _assert_float16_identical_but_rare_ulps(mel, fx[f"{sig}/mel"], str(sig))
    batch, starts = mn.make_patches(mel)
    assert batch.dtype == np.float32
    _assert_float16_identical_but_rare_ulps(batch, fx[f"{sig}/batch"],
                                            f"{sig} patches")
    idx = starts[:, None] + np.arange(mn.PATCH_FRAMES)[None]
    np.testing.assert_array_equal(batch, mel[idx].astype(np.float32))
    np.testing.assert_array_equal(starts,
                                  np.arange(len(batch)) * mn.PATCH_FRAMES)
  assert np.isinf(fx["loud_sine/mel"]).any()   # the original overflows


@pytest.mark.parametrize("model", mn.MODELS)
def test_network_matches_tf(fx, model):
  net = mn.get_musicnn(model, exact=True)
  for sig in _finite_signals(fx):
    # From musicnn's own network input ...
    y = net.run_patches(fx[f"{sig}/batch"].astype(np.float32))
    # ... and end to end from the audio.
    out = net(_audio(fx, sig))
    for k, atol in TOL.items():
      ref = fx[f"{sig}/{model}/{k}"]
      assert y[k].shape == ref.shape
      np.testing.assert_allclose(y[k], ref, atol=atol, rtol=0,
                                 err_msg=f"{model} {sig} {k}")
      np.testing.assert_allclose(getattr(out, k), ref, atol=atol, rtol=0,
                                 err_msg=f"{model} {sig} {k} (audio)")
    np.testing.assert_allclose(out.starts,
                               np.arange(len(ref)) * mn.PATCH_SECONDS)


def test_default_preprocessing_is_close_and_never_overflows(fx):
  """exact=False: float32 log compression. Measured taggram difference
  from the original 2.4e-4 where the original is finite."""
  net = mn.get_musicnn("MTT_musicnn")
  for sig in _finite_signals(fx):
    mel = mn.log_mel(_audio(fx, sig))
    assert mel.dtype == np.float32
    np.testing.assert_allclose(mel, fx[f"{sig}/mel"].astype(np.float32),
                               atol=2.5e-3)
    np.testing.assert_allclose(net(_audio(fx, sig)).taggram,
                               fx[f"{sig}/MTT_musicnn/taggram"], atol=1e-3)
  loud = net(_audio(fx, "loud_sine"))
  assert np.isnan(fx["loud_sine/MTT_musicnn/taggram"]).all()
  assert np.isfinite(loud.taggram).all() and np.isfinite(
      loud.penultimate).all()
  assert ((loud.taggram > 0) & (loud.taggram < 1)).all()


def test_chunking_and_patch_hop(fx):
  """Chunked, zero-padded calls give the per-patch results; overlapping
  patches (hop 1.024 s = 64 frames) start where asked."""
  x = np.concatenate([fx[f"{s}/batch"] for s in _finite_signals(fx)])
  x = x.astype(np.float32)                                       # 5 patches
  full = mn.Musicnn("MTT_musicnn", chunk=8).run_patches(x)
  small = mn.Musicnn("MTT_musicnn", chunk=4)
  assert small._sizes(5) == [(4, 4), (1, 1)]
  assert small._sizes(11) == [(4, 4), (4, 4), (3, 4)]
  got = small.run_patches(x)
  for k in full:
    np.testing.assert_allclose(got[k], full[k], atol=1e-5, rtol=1e-6)
  out = mn.get_musicnn("MTT_musicnn")(_audio(fx, "chirp"), hop_seconds=1.024)
  np.testing.assert_allclose(out.starts, np.arange(3) * 1.024)   # 376 frames
  assert out.penultimate.shape == (3, 200)


def test_shipped_weights_tags_and_licence():
  w = mn.load_weights("mtt")
  tags = list(w.pop("tags"))
  assert sum(a.size for a in w.values()) == 787159
  assert all(a.dtype == np.float32 for a in w.values())
  for t in ("piano", "guitar", "strings", "classical", "violin"):
    assert t in tags
  msd = list(mn.load_weights("MSD_musicnn")["tags"])
  assert len(msd) == 50 and "rock" in msd and "piano" not in msd
  lic = resources.files("lmdm_jax.eval").joinpath("weights",
                                                  "LICENSE.musicnn")
  assert "Permission to use, copy, modify" in lic.read_text()


def test_bad_inputs():
  with pytest.raises(ValueError, match="at least 187 frames"):
    mn.make_patches(mn.log_mel(np.zeros(mn.MIN_SAMPLES - 1, np.float32)))
  assert len(mn.make_patches(mn.log_mel(
      np.zeros(mn.MIN_SAMPLES, np.float32)))[0]) == 1
  with pytest.raises(ValueError, match="mono"):
    mn.log_mel(np.zeros((2, 50000), np.float32))
  with pytest.raises(ValueError, match="NaN or inf"):
    mn.log_mel(np.full(50000, np.nan, np.float32))
  with pytest.raises(ValueError, match="unknown musicnn model"):
    mn.canonical_model("vgg")
  with pytest.raises(ValueError, match=r"patches must be \[P, 187, 96\]"):
    mn.get_musicnn().run_patches(np.zeros((1, 100, 96), np.float32))
  with pytest.raises(ValueError, match="hop_seconds"):
    mn.get_musicnn()(np.zeros(50000, np.float32), hop_seconds=0.001)
  with pytest.raises(ValueError, match="unknown embedding layer"):
    mn.get_musicnn()(np.zeros(50000, np.float32)).embeddings("cnn1")


def test_resampling_to_16k():
  sr = 44100
  t = np.arange(sr) / sr
  x = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)])
  y = mn.to_mono_16k(x.astype(np.float32), sr)
  assert y.shape == (16000,) and y.dtype == np.float32
  spec = np.abs(np.fft.rfft(y))
  assert abs(np.argmax(spec) - 440) <= 1          # 1 Hz bins
  with pytest.raises(ValueError, match="sample_rate"):
    mn.to_mono_16k(y, 0)
