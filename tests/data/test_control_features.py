"""Control features on synthetic signals; drawn curves; packing."""
import numpy as np
import pytest

from lmdm_jax.data import controls as extract, features
from lmdm_jax.model import control_inputs as inputs

SR = 22050
FR = SR / 1024            # ~21.5 latent frames per second


def sine(freq, seconds, amp=0.5, sr=SR):
  t = np.arange(int(seconds * sr)) / sr
  return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("frames", [1, 20, 43, 100])
def test_exact_frame_counts(frames):
  x = sine(440, 1.0)                      # shorter than 100 frames: padded
  assert features.loudness(x, SR, FR, frames).shape == (frames, 1)
  assert features.brightness(x, SR, FR, frames).shape == (frames, 1)
  assert features.cqt_topk(x, SR, FR, frames).shape == (frames, 84)
  midi, voiced = features.pitch(x, SR, FR, frames, method="yin")
  assert midi.shape == (frames, 1) and voiced.shape == (frames,)


def test_loudness_of_a_sine_and_a_6db_step():
  x = sine(440, 2.0, amp=0.5)
  x[len(x) // 2:] *= 0.5                  # -6.02 dB at 1.0 s
  n = int(2.0 * FR)
  db = features.loudness(x, SR, FR, n)[:, 0]
  first, second = db[3:n // 2 - 2], db[n // 2 + 2:-3]
  # A sine of amplitude a has mean power a^2 / 2: 20 log10(0.5) - 3.01.
  np.testing.assert_allclose(first, 20 * np.log10(0.5) - 3.0103, atol=0.05)
  np.testing.assert_allclose(first.mean() - second.mean(), 6.0206,
                             atol=0.05)
  # A-weighting: about +1.2 dB at 2 kHz, -19 dB at 100 Hz.
  hi = features.loudness(sine(2000, 1.0), SR, FR, 20, a_weighting=True)
  lo = features.loudness(sine(100, 1.0), SR, FR, 20, a_weighting=True)
  plain = features.loudness(sine(100, 1.0), SR, FR, 20)
  assert abs(hi[5:15].mean() - (plain[5:15].mean() + 1.2)) < 0.3
  assert abs(lo[5:15].mean() - (plain[5:15].mean() - 19.1)) < 0.5
  silent = features.loudness(np.zeros(SR), SR, FR, 10)
  # Tolerated, not exact: when the pooled power comes back float32 (numpy /
  # librosa versions decide) the 1e-10 floor rounds to 1.00000001e-10, i.e.
  # -100.0000076 dB. 1e-4 dB is 10x that round-off and 1000x below any real
  # change (an unapplied floor is -inf, another floor >= 0.1 dB away).
  np.testing.assert_allclose(silent, features.LOUDNESS_FLOOR_DB, rtol=0,
                             atol=1e-4)


@pytest.mark.parametrize("method", ["pyin", "yin"])
@pytest.mark.parametrize("freq,midi", [(220.0, 57.0), (440.0, 69.0)])
def test_pitch_of_a_sine(method, freq, midi):
  x = np.concatenate([sine(freq, 1.0), np.zeros(SR // 2, np.float32)])
  n = int(1.5 * FR)
  m, voiced = features.pitch(x, SR, FR, n, method=method)
  inner = slice(2, int(FR) - 2)
  assert voiced[inner].all()
  cents = 100 * np.abs(m[inner, 0] - midi)
  assert cents.max() < 10, cents           # pyin's grid is 10 cents
  assert abs(100 * (m[inner, 0].mean() - midi)) < 6
  assert not voiced[-5:].any() and not m[-5:].any()   # silence: unvoiced


def test_brightness_orders_sines_and_noise():
  b = [features.brightness(sine(f, 1.0), SR, FR, 20)[5:15, 0].mean()
       for f in (200, 800, 3200)]
  assert b[0] < b[1] < b[2]
  want = np.log2(800 / 20) / np.log2(SR / 2 / 20)
  assert abs(b[1] - want) < 0.01
  noise = np.random.default_rng(0).normal(size=SR).astype(np.float32) * 0.1
  assert features.brightness(noise, SR, FR, 20)[5:15].mean() > b[2]
  np.testing.assert_array_equal(
      features.brightness(np.zeros(SR), SR, FR, 5), 0.0)


def test_cqt_topk_keeps_k_bins_at_the_pitch():
  x = sine(440, 1.0) + sine(1760, 1.0, amp=0.1)
  c = features.cqt_topk(x, SR, FR, 20, k=3)
  inner = c[3:17]
  assert ((inner > 0).sum(axis=1) == 3).all()
  assert (inner.argmax(axis=1) == 69 - 24).all()      # A4 from C1
  np.testing.assert_allclose(inner.max(axis=1), 1.0)
  # A two-note chord (A4 + E5, equal loudness): top-2 are the two notes.
  chord = sine(440, 1.0) + sine(440 * 2 ** (7 / 12), 1.0)
  c2 = features.cqt_topk(chord, SR, FR, 20, k=2)[3:17]
  for row in c2:
    assert sorted(np.nonzero(row)[0]) == [69 - 24, 76 - 24]
  quiet = np.concatenate([sine(440, 0.5), np.zeros(SR // 2)])
  assert not features.cqt_topk(quiet, SR, FR, 20)[-4:].any()


def test_stereo_is_averaged_and_bad_input_raises():
  x = sine(440, 0.5)
  stereo = np.stack([x, x])
  np.testing.assert_allclose(features.loudness(stereo, SR, FR, 8),
                             features.loudness(x, SR, FR, 8))
  with pytest.raises(ValueError, match="audio must be"):
    features.loudness(np.zeros((2, 2, 10)), SR, FR, 8)
  with pytest.raises(ValueError, match="NaN"):
    features.loudness(np.full(100, np.nan), SR, FR, 8)
  with pytest.raises(ValueError, match="frames"):
    features.loudness(x, SR, FR, 0)
  with pytest.raises(ValueError, match="frame_rate"):
    features.brightness(x, SR, -1.0, 8)
  with pytest.raises(ValueError, match="sample_rate"):
    features.brightness(x, 22050.5, FR, 8)
  with pytest.raises(ValueError, match="method"):
    features.pitch(x, SR, FR, 8, method="crepe")
  with pytest.raises(ValueError, match="k must"):
    features.cqt_topk(x, SR, FR, 8, k=0)
  with pytest.raises(ValueError, match="nyquist"):
    features.cqt_topk(x, SR, FR, 8, n_bins=128)


def test_curve_to_frames():
  fr = 10.0
  v, m = features.curve_to_frames([(0.5, -10.0), (1.0, -20.0)], 15, fr)
  assert v.shape == (15, 1) and m.shape == (15,)
  np.testing.assert_array_equal(m, (np.arange(15) >= 5) & (np.arange(15)
                                                          <= 10))
  np.testing.assert_allclose(v[5:11, 0], np.linspace(-10, -20, 6),
                             atol=1e-5)
  np.testing.assert_array_equal(v[m == 0], 0.0)
  step, _ = features.curve_to_frames([(0.0, 1.0), (0.35, 2.0)], 6, fr,
                                     kind="step", hold=True)
  np.testing.assert_array_equal(step[:, 0], [1, 1, 1, 1, 2, 2])
  for bad in ([], [(1.0, 0.0), (0.5, 1.0)], [(0.0, np.nan)], [(1, 2, 3)]):
    with pytest.raises(ValueError):
      features.curve_to_frames(bad, 10, fr)
  with pytest.raises(ValueError, match="kind"):
    features.curve_to_frames([(0, 1)], 10, fr, kind="cubic")
  packed = extract.from_curve("pitch", [(0.0, 60.0), (1.0, 84.0)], 11, fr)
  np.testing.assert_allclose(packed[:, 0], np.linspace(0, 1, 11), atol=1e-6)
  np.testing.assert_array_equal(packed[:, 1], 1.0)
  with pytest.raises(ValueError, match="1-dim"):
    extract.from_curve("cqt_topk", [(0, 1)], 5, fr)


def test_extract_packs_normalised_controls_with_masks():
  x = np.concatenate([sine(440, 1.0), np.zeros(SR // 2, np.float32)])
  n = int(1.5 * FR)
  out = extract.extract(["loudness", "pitch", "cqt_topk"], x, SR, FR, n,
                        pitch_method="yin")
  assert out["loudness"].shape == (n, 2)
  assert out["cqt_topk"].shape == (n, 85)
  np.testing.assert_allclose(out["loudness"][5, 0],
                             (20 * np.log10(0.5) - 3.01 + 30) / 30,
                             atol=0.01)
  np.testing.assert_array_equal(out["loudness"][:, 1], 1.0)
  pitch = out["pitch"]
  assert pitch[5, 1] == 1 and pitch[-3, 1] == 0 and pitch[-3, 0] == 0
  np.testing.assert_allclose(pitch[5, 0], (69 - 60) / 24, atol=0.01)
  with pytest.raises(ValueError, match="unknown audio control"):
    extract.extract(["timbre"], x, SR, FR, n)


def test_frame_centre_lines_features_up_with_the_codec_frames():
  """A codec whose frame j covers samples [j*hop, (j+1)*hop) (Oobleck, pool:
  frame_centre 0.5) must see a burst filling exactly frame 10's samples as
  loudest in frame 10; centred features (mel, 0.0) straddle frames 10/11."""
  hop = SR // 21                         # FR = SR / hop exactly
  fr = SR / hop
  n = 24
  x = np.zeros(n * hop, np.float32)
  x[10 * hop:11 * hop] = sine(1000, 1.0)[:hop]
  covering = extract.extract(["loudness"], x, SR, fr, n,
                             frame_centre=0.5)["loudness"][:, 0]
  centred = extract.extract(["loudness"], x, SR, fr, n)["loudness"][:, 0]
  assert covering.argmax() == 10
  assert covering[10] > covering[9] + 0.1 and covering[10] > covering[11] + 0.1
  assert abs(centred[10] - centred[11]) < 0.1   # half the burst in each
  np.testing.assert_array_equal(              # == the audio half a frame on
      covering, extract.extract(["loudness"], x[hop // 2:], SR, fr,
                                n)["loudness"][:, 0])
  with pytest.raises(ValueError, match="frame_centre must be in"):
    extract.extract(["loudness"], x, SR, fr, n, frame_centre=1.0)


def test_codecs_say_where_their_frames_sit():
  from lmdm_jax.codecs import get_codec
  from lmdm_jax.codecs.oobleck import OobleckCodec
  assert get_codec("mel").frame_centre == 0.0
  assert get_codec("pool").frame_centre == 0.5
  assert OobleckCodec.frame_centre == 0.5


def test_pack_and_cut_helpers():
  v = np.arange(12, dtype=np.float32).reshape(1, 6, 2)
  m = np.array([[1, 0, 1, 1, 0, 1]], np.float32)
  p = inputs.pack(v, m)
  np.testing.assert_array_equal(p[0, 1], [0, 0, 0])
  np.testing.assert_array_equal(p[0, 2], [4, 5, 1])
  cut = inputs.partner_cut(p, cutoff=4)
  np.testing.assert_array_equal(cut[:, 4:], 0.0)
  np.testing.assert_array_equal(cut[:, :4], p[:, :4])
  assert inputs.visibility_cutoff(12, 4, -3) == 9
  for bad in (5, -13, 1.5):
    with pytest.raises(ValueError, match="visibility"):
      inputs.visibility_cutoff(12, 4, bad)
