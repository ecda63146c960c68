"""Control adherence and jamming coherence (the paper's Table 2 columns).

Given the control a model was asked to follow (a reference recording, or
the features it was given) and the audio it generated, measure how well
the same features extracted from the generated audio match:

  melody      `pitch_accuracy`: of the frames voiced in the reference, the
              fraction the generation also voices within `tolerance_cents`
              (mir_eval's raw pitch accuracy; `octave_invariant` gives raw
              chroma accuracy); `cqt_topk_match`: per frame, does the
              generation's strongest CQT bin lie in the reference's top-k
              bins (the paper's top-k CQT melody control), over frames
              where the reference has any energy.
  rhythm      `onset_f1`: librosa onsets of both, matched one-to-one within
              `tolerance_s` (50 ms, as mir_eval's onset F-measure).
  dynamics    `loudness_correlation`: Pearson r of the per-frame loudness
              curves (dB), over frames where either is above the floor.

For jamming (`coherence`) the reference is the partner's stem and the
question is whether the generation fits it, not copies it:

  `chord_tone`        per frame where the partner sounds, is its pitch class
                      (strongest CQT chroma bin: a monophonic part) a tone of
                      the major or minor triad that best fits the
                      generation's chroma there? Chance is about 3/12; the
                      real accompaniment of 8 held-out chorales scores 0.62
                      against its own partner and 0.28 against another
                      piece's, but only 0.26 once through the demo's mel
                      codec (docs/control.md). Harmonic fit, not copying:
                      four-part writing seldom doubles the melody note, so
                      partner and accompaniment chroma need not be alike;
  `chroma_agreement`  mean cosine similarity of the chroma of partner and
                      generation per frame (kept for comparison: it does not
                      separate real from random pairs on chorales);
  `onset_f1`          of the generation's onsets against the partner's
                      (rhythmic alignment; a tolerance of 70 ms by default).

Every function takes per-frame arrays (as lmdm_jax.data.features
returns them) or audio, and returns plain floats: these are pure numpy
functions, cheap enough to run over every held-out piece.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from lmdm_jax.data import features as F


def _check_frames(a: np.ndarray, b: np.ndarray, what: str) -> None:
  if a.shape[0] != b.shape[0]:
    raise ValueError(f"{what}: reference has {a.shape[0]} frames, "
                     f"generation {b.shape[0]}; extract both at the same "
                     f"frame rate and length")


def pitch_accuracy(ref_midi, ref_voiced, gen_midi, gen_voiced,
                   tolerance_cents: float = 50.0,
                   octave_invariant: bool = False) -> float:
  """Raw pitch (or chroma) accuracy over the reference's voiced frames.

  ref_midi, gen_midi: [frames] or [frames, 1] MIDI numbers; *_voiced:
  [frames] 0/1. Returns NaN when the reference has no voiced frame.
  """
  rm, gm = np.ravel(ref_midi), np.ravel(gen_midi)
  rv, gv = np.ravel(ref_voiced) > 0.5, np.ravel(gen_voiced) > 0.5
  _check_frames(rm, gm, "pitch_accuracy")
  if tolerance_cents <= 0:
    raise ValueError(f"tolerance_cents must be > 0, got {tolerance_cents}")
  if not rv.any():
    return float("nan")
  diff = 100.0 * (gm - rm)
  if octave_invariant:
    diff = (diff + 600.0) % 1200.0 - 600.0
  hit = rv & gv & (np.abs(diff) <= tolerance_cents)
  return float(hit.sum() / rv.sum())


def cqt_topk_match(ref_topk, gen_cqt) -> float:
  """Fraction of reference-active frames whose generated strongest CQT bin
  is among the reference's kept (top-k) bins. ref_topk, gen_cqt:
  [frames, bins] (features.cqt_topk output; gen may be a full CQT).
  Returns NaN when the reference is silent throughout."""
  ref, gen = np.asarray(ref_topk), np.asarray(gen_cqt)
  _check_frames(ref, gen, "cqt_topk_match")
  if ref.shape[1] != gen.shape[1]:
    raise ValueError(f"cqt_topk_match: {ref.shape[1]} vs {gen.shape[1]} "
                     f"bins")
  active = ref.max(axis=1) > 0
  gen_active = gen.max(axis=1) > 0
  if not active.any():
    return float("nan")
  best = gen.argmax(axis=1)
  hit = ref[np.arange(len(ref)), best] > 0
  return float((hit & active & gen_active).sum() / active.sum())


def match_events(ref_times, gen_times, tolerance_s: float) -> int:
  """Largest one-to-one matching of events within tolerance (both sorted:
  a greedy sweep is optimal for interval matching on a line)."""
  ref = np.sort(np.asarray(ref_times, float))
  gen = np.sort(np.asarray(gen_times, float))
  i = j = hits = 0
  while i < len(ref) and j < len(gen):
    d = gen[j] - ref[i]
    if abs(d) <= tolerance_s:
      hits, i, j = hits + 1, i + 1, j + 1
    elif d < 0:
      j += 1
    else:
      i += 1
  return hits


def event_f1(ref_times, gen_times, tolerance_s: float = 0.05) -> float:
  """F-measure of generated events against reference events. 1.0 when both
  are empty, 0.0 when exactly one is."""
  if tolerance_s <= 0:
    raise ValueError(f"tolerance_s must be > 0, got {tolerance_s}")
  n_ref, n_gen = len(ref_times), len(gen_times)
  if n_ref == 0 and n_gen == 0:
    return 1.0
  if n_ref == 0 or n_gen == 0:
    return 0.0
  hits = match_events(ref_times, gen_times, tolerance_s)
  p, r = hits / n_gen, hits / n_ref
  return 0.0 if hits == 0 else float(2 * p * r / (p + r))


def onsets(audio, sample_rate: int) -> np.ndarray:
  """Onset times in seconds (librosa's onset detector, backtracking off)."""
  import librosa
  x = F._mono(audio)
  return librosa.onset.onset_detect(y=x, sr=sample_rate, units="time",
                                    hop_length=256)


def onset_f1(ref_audio, gen_audio, sample_rate: int,
             tolerance_s: float = 0.05) -> float:
  return event_f1(onsets(ref_audio, sample_rate),
                  onsets(gen_audio, sample_rate), tolerance_s)


def loudness_correlation(ref_db, gen_db,
                         floor_db: float = F.LOUDNESS_FLOOR_DB) -> float:
  """Pearson r of two loudness curves [frames] or [frames, 1] (dB), over
  frames where either is above the floor. NaN if either is constant."""
  r, g = np.ravel(ref_db).astype(float), np.ravel(gen_db).astype(float)
  _check_frames(r, g, "loudness_correlation")
  keep = (r > floor_db) | (g > floor_db)
  r, g = r[keep], g[keep]
  if len(r) < 2 or r.std() == 0 or g.std() == 0:
    return float("nan")
  return float(np.corrcoef(r, g)[0, 1])


def chroma(audio, sample_rate: int, frame_rate: float,
           frames: int) -> np.ndarray:
  """[frames, 12] chroma (librosa chroma_stft, pooled to latent frames)."""
  import librosa
  x = F._fit(F._mono(audio), sample_rate, frame_rate, frames)
  hop = F._hop(sample_rate)
  c = librosa.feature.chroma_stft(y=x, sr=sample_rate, hop_length=hop,
                                  n_fft=4 * hop)
  times = np.arange(c.shape[1]) * hop / sample_rate
  return F.pool_to_frames(c.T, times, frames, frame_rate)[0]


def chroma_agreement(partner_chroma, gen_chroma) -> float:
  """Mean cosine similarity of per-frame chroma vectors [frames, 12], over
  frames where both have energy. NaN if there is no such frame."""
  a, b = np.asarray(partner_chroma, float), np.asarray(gen_chroma, float)
  _check_frames(a, b, "chroma_agreement")
  na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
  keep = (na > 1e-8) & (nb > 1e-8)
  if not keep.any():
    return float("nan")
  return float(np.mean((a[keep] * b[keep]).sum(1) / (na[keep] * nb[keep])))


def _triad_templates() -> np.ndarray:
  """[24, 12] unit-norm major (root, +4, +7) and minor (root, +3, +7)
  triads, rows 2r (major) and 2r + 1 (minor) for root pitch class r."""
  t = np.zeros((24, 12))
  for r in range(12):
    for j, third in enumerate((4, 3)):
      t[2 * r + j, [r, (r + third) % 12, (r + 7) % 12]] = 1.0
  return t / np.sqrt(3.0)


TRIADS = _triad_templates()


def chroma_cqt(audio, sample_rate: int, frame_rate: float,
               frames: int) -> np.ndarray:
  """[frames, 12] CQT chroma (librosa chroma_cqt, pooled to latent frames):
  sharper pitch classes than the STFT chroma for low voices."""
  import librosa
  x = F._fit(F._mono(audio), sample_rate, frame_rate, frames)
  hop = F._hop(sample_rate, 2 ** 6)          # CQT hops: multiples of 2^6
  c = librosa.feature.chroma_cqt(y=x, sr=sample_rate, hop_length=hop)
  times = np.arange(c.shape[1]) * hop / sample_rate
  return F.pool_to_frames(c.T, times, frames, frame_rate)[0]


def best_triads(chroma_frames) -> np.ndarray:
  """[frames] index into TRIADS of the best-fitting triad (cosine) of each
  chroma frame [frames, 12]."""
  c = np.asarray(chroma_frames, float)
  c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
  return np.argmax(c @ TRIADS.T, axis=1)


def partner_pitch_classes(partner_audio, sample_rate: int, frame_rate: float,
                          frames: int, floor_db: float = -30.0) -> np.ndarray:
  """[frames] pitch class (0 = C) of a monophonic part per latent frame, -1
  where it is silent (loudness more than `floor_db` below its loudest
  frame)."""
  pc = np.argmax(chroma_cqt(partner_audio, sample_rate, frame_rate, frames),
                 axis=1)
  db = F.loudness(partner_audio, sample_rate, frame_rate, frames)[:, 0]
  return np.where(db >= db.max() + floor_db, pc, -1)


def chord_tone_agreement(partner_pcs, gen_chroma) -> float:
  """Fraction of frames with a partner pitch class (>= 0 in `partner_pcs`
  [frames]) where that class is a tone of the triad best fitting
  `gen_chroma` [frames, 12]. NaN if the partner never sounds."""
  pcs = np.asarray(partner_pcs)
  g = np.asarray(gen_chroma, float)
  if pcs.shape[0] != g.shape[0]:
    raise ValueError(f"chord_tone_agreement: {pcs.shape[0]} partner frames "
                     f"vs {g.shape[0]} generated frames")
  on = np.flatnonzero(pcs >= 0)
  if on.size == 0:
    return float("nan")
  tones = TRIADS[best_triads(g[on])] > 0                # [n, 12]
  return float(np.mean(tones[np.arange(on.size), pcs[on]]))


def adherence(ref_audio, gen_audio, sample_rate: int, frame_rate: float,
              frames: Optional[int] = None, pitch_method: str = "pyin",
              k: int = 4) -> Dict[str, float]:
  """Every Table-2 column for one (control source, generation) pair: both
  [channels, samples] or [samples] at `sample_rate`."""
  if frames is None:
    n = min(np.shape(ref_audio)[-1], np.shape(gen_audio)[-1])
    frames = int(n / sample_rate * frame_rate)
  if frames < 1:
    raise ValueError("audio shorter than one latent frame")
  rm, rv = F.pitch(ref_audio, sample_rate, frame_rate, frames,
                   method=pitch_method)
  gm, gv = F.pitch(gen_audio, sample_rate, frame_rate, frames,
                   method=pitch_method)
  rc = F.cqt_topk(ref_audio, sample_rate, frame_rate, frames, k=k)
  gc = F.cqt_topk(gen_audio, sample_rate, frame_rate, frames, k=1)
  return {
      "pitch_accuracy": pitch_accuracy(rm, rv, gm, gv),
      "chroma_accuracy": pitch_accuracy(rm, rv, gm, gv,
                                        octave_invariant=True),
      "cqt_topk_match": cqt_topk_match(rc, gc),
      "onset_f1": onset_f1(ref_audio, gen_audio, sample_rate),
      "loudness_correlation": loudness_correlation(
          F.loudness(ref_audio, sample_rate, frame_rate, frames),
          F.loudness(gen_audio, sample_rate, frame_rate, frames)),
      "frames": int(frames)}


def coherence(partner_audio, gen_audio, sample_rate: int, frame_rate: float,
              frames: Optional[int] = None,
              tolerance_s: float = 0.07) -> Dict[str, float]:
  """Jamming coherence of a generation with its partner's stem."""
  if frames is None:
    n = min(np.shape(partner_audio)[-1], np.shape(gen_audio)[-1])
    frames = int(n / sample_rate * frame_rate)
  if frames < 1:
    raise ValueError("audio shorter than one latent frame")
  return {
      "chord_tone": chord_tone_agreement(
          partner_pitch_classes(partner_audio, sample_rate, frame_rate,
                                frames),
          chroma_cqt(gen_audio, sample_rate, frame_rate, frames)),
      "chroma_agreement": chroma_agreement(
          chroma(partner_audio, sample_rate, frame_rate, frames),
          chroma(gen_audio, sample_rate, frame_rate, frames)),
      "onset_f1": onset_f1(partner_audio, gen_audio, sample_rate,
                           tolerance_s),
      "frames": int(frames)}
