"""The `semitone` codec: contract, exact streaming, pitch, mono safety."""
import numpy as np
import pytest

from lmdm_jax.codecs import get_codec, registered

SR, HOP = 44100, 2048


@pytest.fixture(scope="module")
def codec():
  return get_codec("semitone")


def _midi_hz(m):
  return 440.0 * 2 ** ((np.asarray(m, float) - 69) / 12)


def _chord(notes, seconds=2.0, amp=0.1, harmonics=1, pan=(1.0, 1.0)):
  """Sines at the notes' pitches (harmonics k with amplitude 1/k), [2, N]."""
  t = np.arange(int(seconds * SR)) / SR
  x = sum(amp / k * np.sin(2 * np.pi * k * f * t + i + k)
          for i, f in enumerate(_midi_hz(notes))
          for k in range(1, harmonics + 1))
  return np.stack([pan[0] * x, pan[1] * x]).astype(np.float32)


def _music(seconds=2.0):
  """A melody with harmonics over a held note and a noise burst, panned."""
  t = np.arange(int(seconds * SR)) / SR
  f0 = _midi_hz(np.array([57, 61, 64, 69]))[(t // 0.5).astype(int) % 4]
  phase = 2 * np.pi * np.cumsum(f0) / SR
  a = sum(np.sin(k * phase) / k for k in range(1, 6)) * np.exp(-3 * (t % .5))
  b = sum(np.sin(2 * np.pi * _midi_hz(52) * k * t) / k for k in range(1, 4))
  n = np.random.default_rng(0).normal(size=t.size) * (t % 1.0 < 0.05)
  return (0.2 * np.stack([a + 0.3 * b + 0.2 * n, 0.3 * a + b + 0.2 * n])
          ).astype(np.float32)


def _note_energy_fraction(y, notes):
  """Share of the mono spectrum's 60..1200 Hz energy within 30 cents of the
  notes (a 1 s Hann FFT from the middle of the clip)."""
  m = y.mean(0)
  m = m[len(m) // 4:len(m) // 4 + SR]
  spec = np.abs(np.fft.rfft(m * np.hanning(len(m)))) ** 2
  f = np.fft.rfftfreq(len(m), 1 / SR)
  band = (f > 60) & (f < 1200)
  near = np.zeros_like(band)
  for fr in _midi_hz(notes):
    near |= np.abs(1200 * np.log2(np.maximum(f, 1) / fr)) < 30
  return spec[near & band].sum() / spec[band].sum()


def _db(x):
  return 10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-30)


def test_geometry_and_scale(codec):
  assert "semitone" in registered()
  assert abs(codec.frame_rate - SR / HOP) < 1e-9
  assert codec.channels == 2 and codec.latent_channels == 64
  assert codec.frame_centre == 0.5
  x = _music()
  z = codec.encode(x)
  assert z.shape == (x.shape[1] // HOP, 64) and z.dtype == np.float32
  assert np.isfinite(z).all()
  # Normalised: music around -20 dBFS gives latents of order one.
  assert abs(z.mean()) < 2.0 and 0.3 < z.std() < 3.0
  y = codec.decode(z)
  assert y.shape == (2, z.shape[0] * HOP) and y.dtype == np.float32


def test_deterministic(codec):
  x = _music()
  np.testing.assert_array_equal(codec.encode(x), codec.encode(x))
  z = codec.encode(x)
  np.testing.assert_array_equal(codec.decode(z), codec.decode(z))
  # A fresh instance gives the same latents and audio.
  other = get_codec("semitone")
  np.testing.assert_array_equal(other.encode(x), z)
  np.testing.assert_array_equal(other.decode(z), codec.decode(z))


@pytest.mark.parametrize("block,synth", [(1, "table"), (5, "table"),
                                         (24, "table"), (5, "stft")])
def test_stream_decode_equals_whole(block, synth):
  codec = get_codec("semitone", noise_synth=synth)
  z = np.random.default_rng(block).normal(size=(61, 64)).astype(np.float32)
  whole = codec.decode(z)
  dec = codec.stream_decoder()
  parts = [dec.push(z[i:i + block]) for i in range(0, len(z), block)]
  parts.append(dec.flush())
  got = np.concatenate(parts, axis=1)
  assert got.shape == whole.shape
  scale = np.abs(whole).max()
  np.testing.assert_allclose(got, whole, atol=1e-5 * scale, rtol=0)
  # Each push holds back exactly one frame (the next frame shapes its end).
  assert parts[0].shape[1] == (block - 1) * HOP


def test_stream_has_no_seam_level_dip(codec):
  """Block-wise decode of a held note: no level change at block joins (a
  single note: partials of several notes beat, which moves the level of
  short frames by itself)."""
  z = codec.encode(_chord([57], seconds=6.0, harmonics=3))
  dec = codec.stream_decoder()
  y = np.concatenate([dec.push(z[i:i + 24]) for i in range(0, len(z), 24)]
                     + [dec.flush()], axis=1)
  frames = y.mean(0)[:(y.shape[1] // 1024) * 1024].reshape(-1, 1024)
  level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)
  seam = 24 * HOP // 1024                      # first 1024-frame after join
  inner = level[4:-4]
  assert np.abs(np.diff(inner)).max() < 1.0
  assert abs(level[seam] - level[seam - 1]) < 1.0


def test_silence_full_scale_and_short_input(codec):
  z = codec.encode(np.zeros((2, 4 * HOP), np.float32))
  assert np.isfinite(z).all() and z.shape == (4, 64)
  y = codec.decode(z)
  assert np.abs(y).max() < 1e-3                # floor decodes to near silence
  # A full-scale sine comes back at its level, finite.
  x = _chord([69], seconds=1.0, amp=1.0)
  z = codec.encode(x)
  assert np.isfinite(z).all()
  y = codec.decode(z)
  assert np.isfinite(y).all()
  n = y.shape[1]
  assert abs(_db(y[:, HOP:n - HOP]) - _db(x[:, HOP:n - HOP])) < 1.0
  # Short input: one frame works, less than one frame is refused.
  assert codec.encode(x[:, :HOP]).shape == (1, 64)
  assert codec.decode(codec.encode(x[:, :HOP])).shape == (2, HOP)
  with pytest.raises(ValueError, match="at least hop"):
    codec.encode(x[:, :HOP - 1])
  with pytest.raises(ValueError, match="zero frames"):
    codec.decode(np.zeros((0, 64), np.float32))
  with pytest.raises(ValueError, match="expects audio"):
    codec.encode(x[:1])
  with pytest.raises(ValueError, match="expects latents"):
    codec.decode(np.zeros((3, 63), np.float32))


def test_constructor_validation():
  with pytest.raises(ValueError, match="latent_channels"):
    get_codec("semitone", semitones=50)
  with pytest.raises(ValueError, match="semitone range"):
    get_codec("semitone", midi_lo=120, semitones=52)


@pytest.mark.parametrize("notes", [[60, 64, 67], [45, 57, 61, 64, 69]])
def test_chord_keeps_its_pitches_and_mel_does_not(codec, notes):
  x = _chord(notes)
  assert _note_energy_fraction(x, notes) > 0.99         # the check itself
  y = codec.decode(codec.encode(x))
  assert _note_energy_fraction(y, notes) > 0.9
  mel = get_codec("mel", iters=4)
  assert _note_energy_fraction(mel.decode(mel.encode(x)), notes) < 0.5


def test_chord_with_harmonics_keeps_pitch_classes(codec):
  """Piano-like tones (6 harmonics): the decoded spectrum's strongest
  pitch classes are the chord's."""
  notes = [50, 57, 62, 66]                               # D major
  y = codec.decode(codec.encode(_chord(notes, harmonics=6)))
  m = y.mean(0)[SR // 2:SR // 2 + SR]
  spec = np.abs(np.fft.rfft(m * np.hanning(len(m)))) ** 2
  f = np.fft.rfftfreq(len(m), 1 / SR)
  keep = (f > 60) & (f < 1200)
  pc = np.rint(12 * np.log2(f[keep] / 440) + 69).astype(int) % 12
  chroma = np.bincount(pc, weights=spec[keep], minlength=12)
  assert set(np.argsort(chroma)[-3:]) == {2, 6, 9}       # D, F#, A


def test_pan_is_kept_and_bounded(codec):
  x = _chord([60, 64, 67], pan=(1.0, 0.5))
  y = codec.decode(codec.encode(x))
  ratio = _db(y[0]) - _db(y[1])
  assert abs(ratio - (_db(x[0]) - _db(x[1]))) < 0.5


@pytest.mark.parametrize("std", [1.0, 3.0])
def test_any_latent_decodes_mono_compatible(codec, std):
  """Whatever a model outputs, the mono mix stays within 3 dB of stereo."""
  rng = np.random.default_rng(int(std))
  for _ in range(3):
    z = rng.normal(scale=std, size=(40, 64)).astype(np.float32)
    y = codec.decode(z)
    mono = 0.5 * (y[0] + y[1])
    assert _db(y) - _db(mono) < 3.0
    assert np.corrcoef(y[0], y[1])[0, 1] > 0       # never anti-phase


def test_anti_phase_input_comes_back_mono_compatible(codec):
  x = _music()
  x[1] = -x[0]
  y = codec.decode(codec.encode(x))
  assert _db(y) - _db(0.5 * (y[0] + y[1])) < 3.0


class _FakeSession:
  """Stands in for a LiveSession: fixed random latent blocks [1, o, 64]."""

  def __init__(self, block=24, seed=0):
    from types import SimpleNamespace as NS
    self.spec = NS(geometry=NS(block=block), model=NS(io_channels=64))
    self.log = []
    self.blocks = []
    self._rng = np.random.default_rng(seed)

  def next_block(self):
    z = self._rng.normal(size=(1, self.spec.geometry.block, 64))
    self.blocks.append(z[0].astype(np.float32))
    return z.astype(np.float32)


def test_player_decodes_block_by_block_exactly(codec):
  """The live/generate path (Player.render) uses the stream decoder: its
  audio is the whole-sequence decode of the latents it played."""
  from lmdm_jax.live.player import Player
  session = _FakeSession(block=6)
  player = Player(session, codec, buffer_blocks=2, overlap=1, output=None)
  assert player._decoder is not None
  audio = player.render(4)
  whole = codec.decode(np.concatenate(session.blocks))
  assert audio.shape == whole.shape
  np.testing.assert_allclose(audio, whole, atol=1e-5 * np.abs(whole).max())


def test_demo_config_selects_the_codec():
  import os
  from lmdm_jax.configs import load_config
  repo = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  from lmdm_jax.codecs.semitone import ONSET_LAYOUT, SUB_PITCH_LAYOUT
  for arg, name, kwargs, steps in (
      ("", "semitone", {}, 3000), ("mel", "mel", {}, 3000),
      ("semitone", "semitone", {}, 3000),
      ("semitone_sub", "semitone", SUB_PITCH_LAYOUT, 3000),
      ("semitone_onset", "semitone", ONSET_LAYOUT, 1500),
      ("smoke,mel", "mel", {}, 4)):
    c = load_config(os.path.join(repo, "configs", "demo.py:" + arg)
                    if arg else os.path.join(repo, "configs", "demo.py"))
    assert c.codec.name == name and c.samples.codec == name
    assert dict(c.codec.kwargs) == kwargs
    assert c.train.steps == steps
  with pytest.raises(ValueError, match="unknown demo variant"):
    load_config(os.path.join(repo, "configs", "demo.py:semitone,mel"))
  # The shipped sketch and jam models are on semitone: the default there.
  for arg, name in (("jam", "semitone"), ("", "semitone"),
                    ("jam,mel", "mel"), ("smoke_jam,semitone", "semitone"),
                    ("smoke_jam", "semitone")):
    c = load_config(os.path.join(repo, "configs", "sketch_demo.py:" + arg))
    assert c.codec.name == name and c.samples.codec == name
  with pytest.raises(ValueError, match="unknown sketch demo variant"):
    load_config(os.path.join(repo, "configs", "sketch_demo.py:jam,smoke"))
  # The onset-layout sketch and jam models are layout fine-tunes of their
  # sub-pitch predecessors: the demo's 1500 steps at 5e-4, not the
  # 2000-step recipe at 1e-3 those were trained with.
  for arg, steps, lr in (("jam,semitone_onset", 1500, 5e-4),
                         ("jam,semitone_sub", 2000, 1e-3)):
    c = load_config(os.path.join(repo, "configs", "sketch_demo.py:" + arg))
    assert (c.train.steps, c.optim.decay_steps, c.optim.lr) == (steps, steps,
                                                                 lr)
    assert c.loss.partner_dropout == 0.1
  assert dict(load_config(os.path.join(
      repo, "configs", "sketch_demo.py:jam,semitone_onset")).codec.kwargs
              ) == ONSET_LAYOUT


def test_repeated_notes_keep_their_onsets(codec):
  """Re-struck notes (same pitch every 0.37 s, not aligned to frames) keep
  their onsets (the fast attack: with linear envelopes, attack=0, F1 is
  0.59 here)."""
  from lmdm_jax.eval import adherence as A
  t = np.arange(int(3.0 * SR)) / SR
  x = sum(np.sin(2 * np.pi * k * _midi_hz(64) * t) / k for k in range(1, 4))
  x = (0.2 * x * np.exp(-8 * (t % 0.37))).astype(np.float32)
  x = np.stack([x, x])
  ref = A.onsets(x, SR)
  assert len(ref) >= 6
  y = codec.decode(codec.encode(x))
  assert A.event_f1(ref, A.onsets(y, SR), 0.05) >= 0.75


def test_blas_threads_do_not_change_the_result(codec):
  x = _music(1.0)
  other = get_codec("semitone", blas_threads=None)
  np.testing.assert_allclose(other.encode(x), codec.encode(x), atol=1e-5)
  z = codec.encode(x)
  np.testing.assert_allclose(other.decode(z), codec.decode(z), atol=1e-5)
  with pytest.raises(ValueError, match="blas_threads"):
    get_codec("semitone", blas_threads=0)


# -- harmonic extension (decoder only: high_tonal) ---------------------------

def _harmonic_tone(f0, harmonics, seconds=3.0, amp=0.15):
  t = np.arange(int(seconds * SR)) / SR
  x = sum(amp / k * np.sin(2 * np.pi * k * f0 * t + k)
          for k in range(1, harmonics + 1))
  return np.stack([x, x]).astype(np.float32)


def _band_peak_share(y, lo, hi, freqs, cents=30):
  """Share of the mono spectrum's energy in [lo, hi) Hz that lies within
  `cents` of the given frequencies (1 s Hann FFT from the clip's middle)."""
  m = y.mean(0)
  m = m[len(m) // 3:len(m) // 3 + SR]
  spec = np.abs(np.fft.rfft(m * np.hanning(len(m)))) ** 2
  f = np.fft.rfftfreq(len(m), 1 / SR)
  band = (f >= lo) & (f < hi)
  near = np.zeros_like(band)
  for fr in freqs:
    near |= np.abs(1200 * np.log2(np.maximum(f, 1) / fr)) < cents
  return spec[near & band].sum() / spec[band].sum(), spec[band].sum()


def test_harmonic_extension_puts_partials_on_the_harmonics():
  """A3 with 12 harmonics: above the semitone range (1.28 kHz) the noise
  bands alone (high_tonal=0, the decoder until 2026-12-02) render band
  noise; with the extension (the default) the band's energy sits on the
  tone's own harmonics (6 .. 12 x 220 Hz), at the same band energy."""
  x = _harmonic_tone(220.0, 12)
  harmonics = 220.0 * np.arange(6, 13)
  plain = get_codec("semitone", high_tonal=0.0)
  ext = get_codec("semitone")
  assert ext.high_tonal == 0.8
  z = plain.encode(x)
  np.testing.assert_array_equal(ext.encode(x), z)      # latents unchanged
  share_raw, e_raw = _band_peak_share(x, 1300, 2700, harmonics, 10)
  share_plain, e_plain = _band_peak_share(plain.decode(z), 1300, 2700,
                                          harmonics, 10)
  share_ext, e_ext = _band_peak_share(ext.decode(z), 1300, 2700, harmonics,
                                      10)
  assert share_raw > 0.95
  assert share_plain < 0.3 < 0.6 < share_ext
  # The extension moves energy, it does not add any (within 1 dB).
  assert abs(10 * np.log10(e_ext / e_plain)) < 1.0
  # Below the range nothing changes.
  lo_plain = plain.decode(z)
  lo_ext = ext.decode(z)
  _, a = _band_peak_share(lo_plain, 100, 1200, [220.0])
  _, b = _band_peak_share(lo_ext, 100, 1200, [220.0])
  assert abs(10 * np.log10(a / b)) < 0.1


def test_harmonic_extension_leaves_noise_noise():
  """White noise: the top octave of semitones is flat, so its high bands
  stay noise (no partials grow out of it)."""
  x = (0.05 * np.random.default_rng(3).normal(size=(2, 3 * SR))
       ).astype(np.float32)
  ext = get_codec("semitone", high_tonal=0.8)
  y = ext.decode(ext.encode(x))
  m = y.mean(0)[SR:2 * SR]
  spec = np.abs(np.fft.rfft(m * np.hanning(len(m)))) ** 2
  f = np.fft.rfftfreq(len(m), 1 / SR)
  band = spec[(f > 1400) & (f < 8000)]
  # Peak over median of a noise spectrum (chi-square, 2 dof) is ~10-20 at
  # this size; a set of partials carrying a share of the energy is 1000s.
  assert band.max() / np.median(band) < 60


def _assert_streams_exactly(codec, z, block):
  """Block-by-block decode of z [frames, 64] == the whole decode; -> it."""
  whole = codec.decode(z)
  dec = codec.stream_decoder()
  parts = [dec.push(z[i:i + block]) for i in range(0, len(z), block)]
  got = np.concatenate(parts + [dec.flush()], axis=1)
  np.testing.assert_allclose(got, whole, atol=1e-5 * np.abs(whole).max(),
                             rtol=0)
  return whole


@pytest.mark.parametrize("block", [1, 24])
def test_extension_streams_exactly(block):
  z = np.random.default_rng(block).normal(size=(49, 64)).astype(np.float32)
  _assert_streams_exactly(get_codec("semitone", high_tonal=0.8), z, block)


def test_extension_arguments_are_checked():
  for bad in (-0.1, 1.5):
    with pytest.raises(ValueError, match="high_tonal must be in"):
      get_codec("semitone", high_tonal=bad)
  with pytest.raises(ValueError, match="needs >= 28 semitones"):
    get_codec("semitone", semitones=12, high_bands=47)
  get_codec("semitone", semitones=12, high_bands=47, high_tonal=0.0)


# -- sub-pitch layout (SUB_PITCH_LAYOUT) --------------------------------------
@pytest.fixture(scope="module")
def sub_codec():
  from lmdm_jax.codecs.semitone import SUB_PITCH_LAYOUT
  return get_codec("semitone", **SUB_PITCH_LAYOUT)


def _peak_near(y, hz, cents=30):
  """Share of the mono spectrum's 25..63 Hz energy within `cents` of hz."""
  m = y.mean(0)[SR // 2:SR // 2 + 2 * SR]
  spec = np.abs(np.fft.rfft(m * np.hanning(len(m)))) ** 2
  f = np.fft.rfftfreq(len(m), 1 / SR)
  band = (f > 25) & (f < 63)
  near = np.abs(1200 * np.log2(np.maximum(f, 1) / hz)) < cents
  return spec[near & band].sum() / spec[band].sum()


@pytest.mark.parametrize("note", [26, 28, 33])        # D1, E1, A1
def test_sub_pitch_keeps_a_bass_note_under_c2(codec, sub_codec, note):
  """A bass note below the semitone range comes back at its pitch with the
  sub-pitch layout; the default layout keeps only a noise band there."""
  x = _chord([note], seconds=3.0, amp=0.3, harmonics=3)
  z = sub_codec.encode(x)
  index = np.floor((z[:, -1] + 1.0) * 6.0)
  assert (index[4:-4] == note - 24).all()
  assert _peak_near(sub_codec.decode(z), _midi_hz(note)) > 0.6
  assert _peak_near(codec.decode(codec.encode(x)), _midi_hz(note)) < 0.2


def test_sub_pitch_layout_keeps_the_rest(codec, sub_codec):
  """Same channels 0..60 as the default layout (semitones and noise bands
  are analysed alike); 3 pan regions keep a panned chord's balance."""
  x = _music()
  z0, z1 = codec.encode(x), sub_codec.encode(x)
  np.testing.assert_array_equal(z0[:, :60], z1[:, :60])
  assert np.all(np.abs(z1[:, -1]) < 1.0)
  y = _chord([60, 64, 67], pan=(1.0, 0.5))
  out = sub_codec.decode(sub_codec.encode(y))
  assert abs((_db(out[0]) - _db(out[1])) - (_db(y[0]) - _db(y[1]))) < 0.5


@pytest.mark.parametrize("block", [1, 24])
def test_sub_pitch_streams_exactly_and_stays_mono_compatible(sub_codec,
                                                             block):
  z = np.random.default_rng(block).normal(
      scale=2.0, size=(49, 64)).astype(np.float32)
  whole = _assert_streams_exactly(sub_codec, z, block)
  assert _db(whole) - _db(0.5 * (whole[0] + whole[1])) < 3.0
  assert np.corrcoef(whole[0], whole[1])[0, 1] > 0


def test_sub_pitch_arguments_are_checked():
  for bad in (-0.1, 1.5):
    with pytest.raises(ValueError, match="sub_share must be in"):
      get_codec("semitone", sub_pitch=True, sub_share=bad)
  with pytest.raises(ValueError, match="sub_fft must be even"):
    get_codec("semitone", sub_pitch=True, sub_fft=1001)
