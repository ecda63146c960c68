"""The `semitone` codec's onset layout (ONSET_LAYOUT): the onset channel the
encoder writes, the decoder's steps and fade at marked onsets, exact
streaming, and the detector behind it (docs/codecs_and_import.md, "Onset
layout")."""
import numpy as np
import pytest

from lmdm_jax.codecs import get_codec
from lmdm_jax.codecs.base import WindowStreamDecoder
from lmdm_jax.codecs.semitone import ONSET_LAYOUT, SUB_PITCH_LAYOUT

SR, HOP = 44100, 2048


@pytest.fixture(scope="module")
def codec():
  return get_codec("semitone", **ONSET_LAYOUT)


@pytest.fixture(scope="module")
def sub_codec():
  return get_codec("semitone", **SUB_PITCH_LAYOUT)


def _hz(m):
  return 440.0 * 2 ** ((np.asarray(m, float) - 69) / 12)


def _tone(f0, seconds, partials=3, amp=0.2):
  t = np.arange(int(seconds * SR)) / SR
  return amp * sum(np.sin(2 * np.pi * k * f0 * t) / k
                   for k in range(1, partials + 1))


def _notes(starts, seconds=4.0, pitches=(57, 64, 60, 67, 62, 69, 59, 65)):
  """Harmonic notes with a 2 ms attack and a smooth decay, each starting at
  one of `starts` (s) and ringing on: [2, N]."""
  t = np.arange(int(seconds * SR)) / SR
  x = np.zeros_like(t)
  for s0, m in zip(starts, pitches):
    env = np.clip((t - s0) / 0.002, 0, 1) * np.exp(-4 * np.clip(t - s0, 0,
                                                                None))
    x += 0.2 * env * sum(np.sin(2 * np.pi * k * _hz(m) * t) / k
                         for k in range(1, 4))
  return np.stack([x, x]).astype(np.float32)


def _marks(codec, z):
  """Marked frames and their onset times (s)."""
  v = z[:, codec.onset_index]
  j = np.flatnonzero(v > 0)
  return j, (j + v[j] - 0.5) * HOP / SR


def _db(x):
  return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-30)


def test_layout(codec, sub_codec):
  """2 pan regions, the onset channel, the sub pitch last; the value
  channels are the sub-pitch layout's."""
  s, n, p = codec.slices
  assert (s, n, p) == (slice(0, 52), slice(52, 60), slice(60, 62))
  assert codec.onset_index == 62
  x = _notes([0.3, 1.1])
  z, z1 = codec.encode(x), sub_codec.encode(x)
  assert z.shape == z1.shape == (x.shape[1] // HOP, 64)
  np.testing.assert_array_equal(z[:, :60], z1[:, :60])
  np.testing.assert_array_equal(z[:, 63], z1[:, 63])       # the sub pitch
  plain = get_codec("semitone", onset_channel=True)       # 3 pan regions
  assert plain.onset_index == 63 and plain.slices[2] == slice(60, 63)
  assert get_codec("semitone").onset_index is None


def test_onsets_are_marked_at_their_positions(codec):
  starts = [0.31, 0.83, 1.42, 1.97, 2.55, 3.12]      # not on frame starts
  z = codec.encode(_notes(starts))
  j, times = _marks(codec, z)
  # Every note is marked within 12 ms (the detector's hop is 5.8 ms) ...
  for s0 in starts:
    assert np.min(np.abs(times - s0)) < 0.012, (s0, times)
  # ... and nothing else, except where the input's abrupt end rises.
  inside = j < len(z) - 3
  assert inside.sum() == len(starts), times
  v = np.delete(z[:, codec.onset_index], j)
  np.testing.assert_array_equal(v, -1.0)
  assert np.all((z[j, codec.onset_index] >= 0.5)
                & (z[j, codec.onset_index] < 1.5))


@pytest.mark.parametrize("f0", [110.0, 196.0, 392.0])
def test_held_tones_are_not_marked_where_only_their_partials_beat(codec, f0):
  """The detector alone hears the beating of the weak mel bands under a
  held tone as dozens of onsets; the gate on the codec's own values keeps
  the tone's start (and the input's abrupt end) only."""
  x = _tone(f0, 4.0) * np.clip(np.arange(4 * SR) / (0.01 * SR), 0, 1)
  times, _ = codec._onsets.detect(x)
  assert len(times) > 20
  z = codec.encode(np.stack([x, x]).astype(np.float32))
  j, _ = _marks(codec, z)
  assert np.all((j < 3) | (j >= len(z) - 3)), j


def test_a_melody_comes_back_with_one_onset_per_note(codec, sub_codec):
  """The sub-pitch layout's decoder attacks at the start of every frame a
  channel rose into, and a note change spread by the analysis windows over
  two frames comes out as two onsets; the onset layout steps once, at the
  marked sample."""
  from lmdm_jax.eval import adherence as A
  starts = np.cumsum([0.2] + [0.37, 0.29, 0.41, 0.33, 0.45, 0.31, 0.39])
  x = _notes(starts, seconds=3.6)
  ref = A.onsets(x, SR)
  f_on = A.event_f1(ref, A.onsets(codec.decode(codec.encode(x)), SR), 0.05)
  f_sub = A.event_f1(ref, A.onsets(sub_codec.decode(sub_codec.encode(x)),
                                   SR), 0.05)
  assert f_on >= 0.9 and f_on > f_sub + 0.1, (f_on, f_sub)


def _rise_time(y, level):
  """First sample where the 64-sample RMS of y's mid reaches `level`."""
  m = y.mean(0).astype(np.float64)
  rms = np.sqrt(np.convolve(m ** 2, np.ones(64) / 64, "same"))
  return int(np.argmax(rms >= level))


@pytest.mark.parametrize("t0", [1.013, 1.031, 1.052])
def test_a_note_after_silence_starts_at_its_sample(codec, sub_codec, t0):
  """Where a note starts inside a frame: the onset layout's output rises
  within 7 ms of it (the detector's hop is 5.8 ms); the sub-pitch layout's at a frame boundary or a
  ramp."""
  x = _notes([t0], seconds=2.0)
  y = codec.decode(codec.encode(x))
  level = 0.5 * np.sqrt(np.mean(np.square(x[0, int((t0 + .05) * SR):
                                               int((t0 + .15) * SR)])))
  got = _rise_time(y, level) / SR
  assert abs(got - t0) < 0.007, got
  errors = [abs(_rise_time(sub_codec.decode(sub_codec.encode(
      _notes([t], seconds=2.0))), level) / SR - t) for t in (1.013, 1.031,
                                                             1.052)]
  assert max(errors) > 0.02, errors


def test_the_fade_is_only_before_marked_onsets(codec):
  """With no onset marked the fade changes nothing; a mark fades the
  output by about onset_dip over the onset_fade samples before its sample
  and leaves the rest of the earlier audio as it was."""
  z = codec.encode(np.stack([_tone(220.0, 3.0)] * 2).astype(np.float32))
  z[:, codec.onset_index] = -1.0
  no_fade = get_codec("semitone", **ONSET_LAYOUT, onset_dip=1.0)
  plain = codec.decode(z)
  np.testing.assert_array_equal(plain, no_fade.decode(z))
  j, u = 30, 0.4
  z[j, codec.onset_index] = 0.5 + u
  y, y1 = codec.decode(z), no_fade.decode(z)
  p = j * HOP + int(u * HOP)
  a = p - codec.onset_fade
  np.testing.assert_array_equal(y[:, :a], y1[:, :a])
  drop = _db(y[:, p - 256:p]) - _db(y1[:, p - 256:p])
  assert -3.5 < drop < -2.0, drop                      # 0.7: -3.1 dB
  np.testing.assert_array_equal(y[:, p + codec.attack:],
                                y1[:, p + codec.attack:])


def _random_marked(seed, frames=61, scale=1.0):
  z = np.random.default_rng(seed).normal(
      scale=scale, size=(frames, 64)).astype(np.float32)
  z[:, 62] = np.where(np.arange(frames) % 3 != 1,
                      0.5 + np.linspace(0, 0.999, frames), -1.0)
  return z


@pytest.mark.parametrize("block", [1, 5, 24])
def test_stream_decode_equals_whole(codec, block):
  z = _random_marked(block, scale=2.0)
  whole = codec.decode(z)
  dec = codec.stream_decoder()
  assert (dec.radius, dec.history) == (1, 2)        # latency: one frame
  parts = [dec.push(z[i:i + block]) for i in range(0, len(z), block)]
  got = np.concatenate(parts + [dec.flush()], axis=1)
  np.testing.assert_allclose(got, whole, atol=1e-5 * np.abs(whole).max(),
                             rtol=0)
  assert _db(whole) - _db(0.5 * (whole[0] + whole[1])) < 3.0


def test_a_frame_reaches_one_frame_back_and_two_ahead(codec):
  """The stream decoder's history and radius are the decoder's reach:
  changing frame k changes audio only in frames k - 1 .. k + 2."""
  z = _random_marked(7)
  base = codec.decode(z)
  k = 30
  for change in ("values", "mark"):
    w = z.copy()
    if change == "values":
      w[k, :60] += 1.0
    else:
      w[k, 62] = -1.0 if w[k, 62] > 0 else 0.7
    d = np.abs(codec.decode(w) - base).max(0)
    changed = np.flatnonzero(d > 0)
    assert changed.size
    assert changed.min() >= (k - 1) * HOP and changed.max() < (k + 3) * HOP


def test_contract_silence_short_and_full_scale(codec):
  z = codec.encode(np.zeros((2, 4 * HOP), np.float32))
  assert (z[:, codec.onset_index] == -1.0).all()
  assert np.abs(codec.decode(z)).max() < 1e-3
  one = codec.encode(_notes([0.01], seconds=HOP / SR))
  assert one.shape == (1, 64) and np.isfinite(codec.decode(one)).all()
  loud = np.clip(_notes([0.2, 0.5], seconds=1.0) * 20, -1, 1)
  z = codec.encode(loud)
  y = codec.decode(z)
  assert np.isfinite(y).all() and np.abs(y).max() < 4.0
  other = get_codec("semitone", **ONSET_LAYOUT)
  np.testing.assert_array_equal(other.encode(loud), z)
  np.testing.assert_array_equal(other.decode(z), y)


def test_onset_arguments_are_checked():
  bad = [({"onset_fade": 0}, "onset_fade"), ({"onset_fade": HOP + 1},
                                             "onset_fade"),
         ({"onset_dip": 0.0}, "onset_dip"), ({"onset_dip": 1.5}, "onset_dip"),
         ({"onset_gate_db": -1.0}, "onset_gate_db"),
         ({"noise_synth": "stft"}, "noise_synth"), ({"attack": 0}, "attack")]
  for kw, match in bad:
    with pytest.raises(ValueError, match=match):
      get_codec("semitone", **ONSET_LAYOUT, **kw)
  with pytest.raises(ValueError, match="history"):
    WindowStreamDecoder(get_codec("semitone"), 1, history=-1)


def test_detector_envelope_is_librosas():
  """OnsetDetector.strength is librosa's onset strength (same mel bands,
  frames and lag) where the dB floors agree (librosa's is relative to the
  clip's maximum, ours absolute: a clip at full scale)."""
  librosa = pytest.importorskip("librosa")
  from lmdm_jax.codecs.onsets import OnsetDetector
  x = _notes([0.1, 0.6, 1.2], seconds=2.0)[0].astype(np.float64) * 4
  det = OnsetDetector(SR)
  mel = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=2048,
                                       hop_length=256)
  det.floor_db = float(librosa.power_to_db(mel).max()) - 80.0
  ref = librosa.onset.onset_strength(y=x, sr=SR, hop_length=256)
  got = det.strength(x)
  n = min(len(ref), len(got))
  np.testing.assert_allclose(got[:n], ref[:n], atol=1e-3 * ref.max())


def test_every_encoded_mark_passes_the_gate_read_back_from_latents(codec):
  """value_rise_db (what benchmarks/onset_channel.py asks of a model's
  marks) reads the encoder's gate measure back from the latents."""
  z = codec.encode(_notes([0.31, 0.83, 1.42, 1.97]))
  rise = codec.value_rise_db(z)
  j, _ = _marks(codec, z)
  assert len(j) >= 4 and (rise[j] >= codec.onset_gate_db).all()
  assert rise.shape == (len(z),) and (rise >= 0).all()
