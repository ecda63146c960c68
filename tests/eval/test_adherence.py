"""Control adherence and jamming coherence metrics on synthetic signals."""
import numpy as np
import pytest

from lmdm_jax.eval import adherence as A

SR = 22050
FR = 44100 / 2048


def _tone(freqs_per_second, amp=0.5, sr=SR):
  """A sine whose frequency changes every second (list of Hz, 0 = rest)."""
  out = []
  for f in freqs_per_second:
    t = np.arange(sr) / sr
    out.append(amp * np.sin(2 * np.pi * f * t) if f else np.zeros(sr))
  return np.concatenate(out).astype(np.float32)


def _clicks(times, seconds=4.0, sr=SR):
  x = np.zeros(int(seconds * sr), np.float32)
  rng = np.random.default_rng(0)
  for t in times:
    i = int(t * sr)
    x[i:i + 400] += rng.standard_normal(400).astype(np.float32) * np.exp(
        -np.arange(400) / 60.0).astype(np.float32)
  return x


def test_pitch_accuracy_by_hand():
  ref = np.array([60, 62, 64, 0, 67], float)
  voiced = np.array([1, 1, 1, 0, 1])
  gen = np.array([60.3, 63, 76, 50, 67], float)
  gv = np.array([1, 1, 1, 1, 0])
  # within 50 cents: frame 0 only (frame 4 unvoiced in gen) -> 1 / 4
  assert A.pitch_accuracy(ref, voiced, gen, gv) == pytest.approx(0.25)
  # octave-invariant: frame 2 (an octave up) also counts -> 2 / 4
  assert A.pitch_accuracy(ref, voiced, gen, gv,
                          octave_invariant=True) == pytest.approx(0.5)
  assert np.isnan(A.pitch_accuracy(ref, 0 * voiced, gen, gv))
  with pytest.raises(ValueError, match="frames"):
    A.pitch_accuracy(ref, voiced, gen[:3], gv[:3])


def test_event_matching_is_one_to_one_within_tolerance():
  ref = [0.5, 1.0, 1.5, 2.0]
  assert A.event_f1(ref, ref) == 1.0
  # two generated events near one reference onset count once
  assert A.match_events([1.0], [0.98, 1.02], 0.05) == 1
  # 2 of 4 hit, 3 generated: P = 2/3, R = 1/2
  assert A.event_f1(ref, [0.52, 1.2, 1.49], 0.05) == pytest.approx(
      2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
  assert A.event_f1([], []) == 1.0 and A.event_f1(ref, []) == 0.0


def test_same_melody_scores_high_and_a_semitone_off_scores_zero():
  notes = [220.0, 246.94, 261.63, 293.66]
  ref = _tone(notes)
  same = A.adherence(ref, ref, SR, FR)
  assert same["pitch_accuracy"] > 0.9 and same["cqt_topk_match"] > 0.9
  shifted = A.adherence(ref, _tone([f * 2 ** (1 / 12) for f in notes]), SR,
                        FR)
  assert shifted["pitch_accuracy"] < 0.1
  assert shifted["chroma_accuracy"] < 0.1
  octave = A.adherence(ref, _tone([2 * f for f in notes]), SR, FR)
  assert octave["pitch_accuracy"] < 0.1 and octave["chroma_accuracy"] > 0.8


def test_onsets_and_loudness_follow_the_signal():
  hits = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
  a = _clicks(hits)
  assert A.onset_f1(a, a, SR) == 1.0
  off = _clicks([t + 0.25 for t in hits])       # off-beat: no onset matches
  assert A.onset_f1(a, off, SR) < 0.2
  # A ramp linear in dB, so the reversed one is its mirror image.
  up = _tone([440] * 4) * (10 ** (np.linspace(-40, 0, 4 * SR) / 20)).astype(
      np.float32)
  down = up[::-1].copy()
  lu = A.F.loudness(up, SR, FR, 80)
  ld = A.F.loudness(down, SR, FR, 80)
  assert A.loudness_correlation(lu, lu) == pytest.approx(1.0)
  assert A.loudness_correlation(lu, ld) < -0.9


def test_coherence_prefers_consonant_partner():
  partner = _tone([261.63] * 3)                   # C
  fifth = _tone([392.0] * 3)                      # G: shares no chroma bin
  same = _tone([523.25] * 3)                      # C an octave up
  c_same = A.coherence(partner, same, SR, FR)["chroma_agreement"]
  c_other = A.coherence(partner, fifth, SR, FR)["chroma_agreement"]
  assert c_same > 0.8 and c_same > c_other + 0.3


def _chord(freqs, seconds=3):
  return sum(_tone([f] * seconds, amp=0.3) for f in freqs)


def test_chord_tone_agreement_on_triads():
  c4, e4, g4, a3 = 261.63, 329.63, 392.0, 220.0
  fs4, as4, cs5 = 369.99, 466.16, 554.37
  partner = _tone([c4] * 3)
  frames = int(3 * FR) - 1
  pcs = A.partner_pitch_classes(partner, SR, FR, frames)
  assert (pcs == 0).all()                       # C everywhere
  def score(gen):
    return A.chord_tone_agreement(pcs, A.chroma_cqt(gen, SR, FR, frames))
  assert score(_chord([c4 / 2, e4, g4])) > 0.95         # C major: C is a tone
  assert score(_chord([a3, c4 * 2, e4])) > 0.95         # A minor: also
  assert score(_chord([fs4, as4, cs5])) < 0.05          # F# major: not
  # Triad templates: rows 2r major, 2r + 1 minor.
  np.testing.assert_array_equal(np.flatnonzero(A.TRIADS[2 * 9 + 1]),
                                [0, 4, 9])              # A minor = A C E
  # A rest in the partner is not scored; an all-silent partner is NaN.
  rest = A.partner_pitch_classes(_tone([c4, 0, c4]), SR, FR, frames)
  assert (rest[int(1.2 * FR):int(1.8 * FR)] == -1).all()
  assert np.isnan(A.chord_tone_agreement(np.full(frames, -1),
                                         np.ones((frames, 12))))
  with pytest.raises(ValueError, match="frames"):
    A.chord_tone_agreement(pcs, np.ones((frames + 1, 12)))
