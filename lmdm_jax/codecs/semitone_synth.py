"""Synthesis of the `semitone` codec: latents -> audio (a mixin).

`SemitoneCodec` (lmdm_jax/codecs/semitone.py) holds the layout, the
analysis and the tables built at construction; this module holds what
turns latent frames into samples: value latents back to energies, the
harmonic extension of the high bands, the oscillator bank, the band noise
and the envelopes with their fast attack. Every output sample is a
function of its absolute sample index and the latent frames at most one
away, so block-by-block decoding equals the whole-sequence decode (the
codec module's docstring has the layout and the analysis).

Synthesis (decode): every output sample is a function of its absolute
sample index and the latent frames at most one frame away, so decoding
block by block (`stream_decoder`) equals decoding the whole sequence:
  semitones  sine oscillators at the semitone frequencies, phase
             2 pi f n / sr + phi_k (n the absolute sample index, phi_k a
             fixed per-semitone offset so chords do not all peak at once),
             amplitude sqrt(2 v) linear between frame centres, except that
             a rise of more than `attack_db` (1 dB) into frame j happens in
             `attack` (64) samples at the start of frame j (the envelope
             holds the old value until then): onsets stay sharp instead of
             46 ms ramps (onset recall 0.48 -> 0.80 on 5 held-out clips),
             up to about a frame early (the analysis windows reach into the
             previous frame); computed per half frame as one matrix product
             with a fixed basis.
  onsets     (the onset layout) instead, one step per rising channel at
             each marked onset, linear envelopes elsewhere, and a short
             fade of the output before each mark (`_marked_segments`,
             `_onset_gain`); a sample then also depends on the frame two
             back.
  noise      (`noise_synth="table"`, default) per band, fixed band-limited
             noise read at the absolute sample index from two tables of
             coprime lengths (2^17 and 5^7: the sum repeats after 2.6 days),
             times the band amplitude, shaped like the oscillators'.
             ("stft": random-phase spectra overlap-added
             with a sine window of 2 * hop; smoother spectra between bands
             but onsets smeared over 93 ms: onset F1 0.75 vs 0.82 on 5
             held-out clips.)
  high       (`high_tonal`, default 0.8: decoder only, the latents are
             the same) up to 80 % of each high band's energy as partials
             at whole semitones above the range (MIDI 88 .. 134), weighted
             like the partials an octave, a twelfth and two octaves and a
             major third below (so they sit on the harmonics of the tones
             the semitones hold), scaled down as the top semitone octave
             looks like noise; the noise keeps the rest. On 32 held-out
             demo clips musicnn FD of the round trip to raw 30.2 -> 17.3,
             MR-STFT 5.91 -> 5.18 dB, pitch accuracy 0.52 -> 0.55
             (docs/codecs_and_import.md).
  stereo     both channels carry the SAME waveform per component, with
             constant-power gains L = sqrt(1 + p), R = sqrt(1 - p),
             |p| <= PAN_MAX = 0.95: whatever latents a model produces, L and
             R are never anti-phase, and a mono mix (L + R) / 2 is at most
             1.8 dB below the stereo level ((sqrt(1.95) + sqrt(0.05)) / 2).
"""
from __future__ import annotations

import numpy as np
import scipy.fft

# |pan| bound of the decoder's constant-power gains: a mono mix is at most
# 1.8 dB below stereo whatever the latents.
PAN_MAX = 0.95
# Harmonic extension (decoder): floored spectral flatness of a semitone
# octave at and below which it counts as noise / as clear partials.
_NOISE_FLATNESS, _TONE_FLATNESS = 0.75, 0.15


def _cyclic(table: np.ndarray, first: int, n: int) -> np.ndarray:
  """table[:, (first + i) % L] for i < n, by slices (no gather)."""
  length = table.shape[1]
  o = first % length
  parts, need = [], n
  while need > 0:
    take = min(need, length - o)
    parts.append(table[:, o:o + take])
    need, o = need - take, 0
  return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


class SemitoneSynthesis:
  """Decoding methods of `SemitoneCodec`; they read the tables its
  constructor builds (oscillator basis, noise tables, band maps)."""

  def _values(self, latents):
    s, n, p = self.slices
    v = np.exp(latents[:, :n.stop].astype(np.float64) * self.scale
               + self.offset) - self.floor
    v = np.clip(v, 0.0, None)
    pan = PAN_MAX * np.tanh(latents[:, p].astype(np.float64))      # [F, R]
    return v[:, s], v[:, n], pan

  def decode_window(self, latents: np.ndarray, start: int) -> np.ndarray:
    """Latents of frames [start, start + n) -> audio [2, n * hop].

    Frames outside the window are taken equal to the nearest edge frame,
    exactly as the whole-sequence decode does at the ends of the sequence;
    inside, a sample depends only on the frames at most one away, so windows
    that overlap by a frame either side join exactly (`stream_decoder`).
    """
    if self._limits is not None:
      with self._limits.limit(limits=self.blas_threads, user_api="blas"):
        return self._decode_window(latents, start)
    return self._decode_window(latents, start)

  def _extension(self, tone_v, noise_v):
    """Harmonic extension: part of the high noise bands' energy as partials
    inferred from the semitones (what spectral band replication does in
    HE-AAC, with the partials' pattern instead of a spectrum copy).
    [F, S], [F, 1 + H] -> oscillator variances [F, S + V] and the noise
    bands' remaining variances [F, 1 + H].

    Above the semitone range, partial m weighs what the partials an
    octave, a twelfth and two octaves and a major third below weigh
    (m - 12, m - 19, m - 28: two, three and five times their frequency,
    the last 14 cents flat of the whole semitone it plays at), recursively:
    every weight sits on a harmonic of a tone the semitones hold. (Without
    the fifth harmonic: held-out round-trip FD 20.6 instead of 17.3; with
    the seventh too, 17.5 and softer onsets.) In a band of variance P the partials get a share
    `high_tonal * tonality` of P in proportion to their weights and the
    noise keeps the rest, where `tonality` (0 .. 1) falls with the
    spectral flatness of the top semitone octave: 0 for noise-like
    semitones, 1 for a few clear partials. (The same inference below the
    range — a fundamental under C2 where its 2nd and 3rd harmonics are —
    was tried and dropped: recorded chord tone 0.870 vs 0.878 without.)
    """
    frames, S = tone_v.shape
    V, eps = len(self._ext_high), 1e-30
    e = np.concatenate([tone_v, np.zeros((frames, V))], -1)
    for i in range(S, S + V):
      e[:, i] = e[:, i - 12] + e[:, i - 19] + e[:, i - 28]
    w = e[:, S:]
    # Tonality of the top octave: spectral flatness with a floor at 1 % of
    # the mean (a semitone that got no FFT bin would zero the geometric
    # mean), mapped so that white noise (flatness 0.58 / 0.78 / 0.89 at the
    # 10th / 50th / 90th percentile of frames) gives 0 and clear partials 1
    # (recorded orchestra: median 0.27, quartiles 0.11 / 0.46).
    top = tone_v[:, -12:]
    mean = np.mean(top, -1, keepdims=True)
    flat = (np.exp(np.mean(np.log(top + 0.01 * mean + eps), -1))
            / (mean[:, 0] + eps))
    share = self.high_tonal * np.clip(
        (_NOISE_FLATNESS - flat) / (_NOISE_FLATNESS - _TONE_FLATNESS),
        0.0, 1.0)
    noise_v = noise_v.copy()
    out = np.zeros_like(w)
    for b in range(self.high_bands):
      sel = self._ext_band == b + 1
      if not sel.any():
        continue
      p = noise_v[:, 1 + b] * self._band_share[1 + b]   # the band's variance
      tot = w[:, sel].sum(-1)
      frac = np.where(tot > eps, share, 0.0)
      out[:, sel] = w[:, sel] * (frac * p / np.maximum(tot, eps))[:, None]
      noise_v[:, 1 + b] *= 1.0 - frac
    return np.concatenate([tone_v, out], -1), noise_v

  def _decode_window(self, latents: np.ndarray, start: int) -> np.ndarray:
    tone_v, noise_v, pan = self._values(latents)
    if self.high_tonal > 0:
      tone_v, noise_v = self._extension(tone_v, noise_v)
    if self.sub_pitch:
      idx = np.clip(np.floor((latents[:, -1].astype(np.float64) + 1.0) * 6.0),
                    0, 11).astype(np.int64)
      sub = np.zeros((len(idx), 12))
      sub[np.arange(len(idx)), idx] = (noise_v[:, 0] * self._band_share[0]
                                       * self.sub_share)
      noise_v = noise_v.copy()
      noise_v[:, 0] *= 1.0 - self.sub_share
      tone_v = np.concatenate([tone_v, sub], -1)
    gains = np.stack([np.sqrt(1.0 + pan), np.sqrt(1.0 - pan)])    # [2,n,R]
    gains = np.concatenate([gains[:, :1], gains, gains[:, -1:]], 1)
    onsets = None
    if self.onset_channel:         # marks [n] and their step ramps [2n, half]
      marks = self._marks(latents)
      onsets = (marks, self._onset_ramps(marks))
    out = self._tones(tone_v, gains, start, onsets)
    out += (self._noise(noise_v, gains, start) if self.noise_synth == "stft"
            else self._noise_td(noise_v, gains, start, onsets))
    if onsets is not None and self.onset_dip < 1.0:
      out *= self._onset_gain(onsets[0])
    return out

  # -- the onset layout ---------------------------------------------------------
  def _marks(self, latents):
    """Onset channel [n] -> sample offset of the marked onset inside each
    frame [n] (int; -1 where none). An offset is kept `attack` samples
    before the end of its half frame, so the step's ramp ends inside the
    segment that holds it."""
    v = latents[:, self.onset_index].astype(np.float64)
    hop, half = self.hop, self.hop // 2
    pos = np.floor(np.clip(v - 0.5, 0.0, 1.0) * hop).astype(np.int64)
    pos = np.where(pos < half, np.minimum(pos, half - self.attack),
                   np.minimum(pos, hop - self.attack))
    return np.where(v > 0.0, pos, -1)

  def _onset_gain(self, marks):
    """[n] marks -> [n * hop] output gain: 1, except a linear fade to
    `onset_dip` over the `onset_fade` samples before each marked onset and
    a rise back to 1 over `attack` samples from it (a fade reaches at most
    one frame back, the rise stays in the marked frame)."""
    hop, n = self.hop, len(marks)
    g = np.ones(n * hop, np.float32)
    fade, dip, att = self.onset_fade, self.onset_dip, self.attack
    down = 1.0 - (1.0 - dip) * (np.arange(fade) + 1.0) / fade
    up = dip + (1.0 - dip) * (np.arange(att) + 0.5) / att
    for j in np.flatnonzero(marks >= 0):
      p = j * hop + int(marks[j])
      a = max(0, p - fade)
      g[a:p] = np.minimum(g[a:p], down[fade - (p - a):])
      g[p:p + att] = np.minimum(g[p:p + att], up)
    return g

  def _onset_ramps(self, marks):
    """[n] marks -> per half-frame segment step ramps [2n, half]: 0 before
    the segment's marked sample, rising to 1 over `attack` samples (rows of
    segments with no mark are never used: their gamma is 0)."""
    half, att = self.hop // 2, self.attack
    n = len(marks)
    q = np.full(2 * n, -1, np.int64)
    has = marks >= 0
    second = marks >= half
    q[2 * np.flatnonzero(has & ~second)] = marks[has & ~second]
    q[2 * np.flatnonzero(has & second) + 1] = marks[has & second] - half
    m = np.arange(half)
    return np.clip((m[None] - np.maximum(q, 0)[:, None] + 0.5) / att, 0.0,
                   1.0).astype(np.float32)

  def _segments(self, amp, marks=None):
    """Edge-padded frame amplitudes [n + 2, C] -> per half-frame segment
    (alpha, beta, gamma) [2n, C]: the amplitude is alpha + beta * m +
    gamma * ramp(m) at sample m of the segment, linear between frame
    centres (the knots) except at attacks. With `marks` (the onset layout)
    the steps are at the marked onsets instead (`_marked_segments`)."""
    if marks is not None:
      return self._marked_segments(amp, marks)
    seg, left, right, alpha, beta = self._linear_segments(amp)
    d = right - left
    gamma = np.zeros_like(alpha)
    if self.attack > 0:
      # A rise of more than attack_db into frame k happens in `attack`
      # samples at the start of frame k (the envelope holds the old value
      # until then): sharp onsets, at most a frame early (analysis windows
      # reach into the previous frame), instead of 46 ms ramps. (A ramp at
      # frame k's centre instead made two onsets of one: rises often span
      # two frames.)
      up = right > left * self._attack_ratio
      first = (seg % 2 == 0)[:, None]
      alpha = np.where(up, left, alpha)
      beta = np.where(up, 0.0, beta)
      gamma = np.where(up & first, d, 0.0)
    return alpha, beta, gamma

  def _linear_segments(self, amp):
    """Edge-padded knots [n + 2, C] -> (segment index [2n], left and right
    knot [2n, C], alpha, beta [2n, C]) of the envelope linear between frame
    centres."""
    n, hop = amp.shape[0] - 2, self.hop
    seg = np.arange(2 * n)
    j0 = seg // 2 - 1 + (seg % 2)                    # left knot, -1..n-1
    c0 = np.where(seg % 2 == 0, 0.5, 0.0) + 0.5 / hop
    left, right = amp[j0 + 1], amp[j0 + 2]
    d = right - left
    return seg, left, right, left + d * c0[:, None], d / hop

  def _marked_segments(self, amp, marks):
    """The onset layout's envelopes (see `_segments`; gamma multiplies the
    segment's step ramp from `_onset_ramps`).

    Frame f's half frames are segments 2f ([f hop, centre f)) and 2f + 1.
    With a marked onset in frame f, every channel that rose into frame f
    holds lo_f from the centre of frame f - 1 to the marked sample and
    steps to a_(f+1), which it holds to the centre of frame f + 1, where
    lo_f = a_(f-1), or a_f when the channel stepped in frame f - 1 too
    (its step reached a_f); a segment no step reaches is linear between
    frame centres. So a sample depends on the frames at most one ahead and
    two back (whether the previous frame's step happened), and a rise the
    analysis windows spread over two frames becomes one step, where the
    audio had it.
    """
    hop = self.hop
    seg, _, _, alpha, beta = self._linear_segments(amp)
    f, h = seg // 2, seg % 2
    # M [n + 2, C]: frame k (at k + 1) has a marked onset at which this
    # channel steps: one that rose into the frame (a_k > a_(k-1)). (Before
    # the encoder's gate, steps of every channel at every mark: onset F1
    # 0.875 / 0.795 held-out / recorded instead of 0.879 / 0.804; of
    # channels rising from k - 1 to k + 1: 0.885 / 0.809, but a frame would
    # then depend on the frame two ahead, a second frame of latency.)
    M = np.zeros(amp.shape, bool)
    M[1:-1] = (marks >= 0)[:, None] & (amp[1:-1] > amp[:-2])
    second = np.concatenate([[False], marks >= hop // 2, [False]])[:, None]
    a = lambda k: amp[k + 1]                         # knot of frame k
    here, prev, nxt = M[f + 1], M[f], M[f + 2]
    hh = h[:, None]
    lo = np.where(prev, a(f), a(f - 1))               # lo_f
    step = here & (second[f + 1] == (hh == 1))
    flat_lo = here & (hh == 0) & second[f + 1]        # step later
    flat_hi = here & (hh == 1) & ~second[f + 1]       # stepped before
    before_next = ~here & (hh == 1) & nxt             # next frame's lo: a_f
    after_prev = ~here & (hh == 0) & prev             # previous hi: a_f
    hi = a(f + 1)
    flat = np.where(flat_lo, lo, np.where(flat_hi, hi, a(f)))
    is_flat = flat_lo | flat_hi | before_next | after_prev
    alpha = np.where(step, lo, np.where(is_flat, flat, alpha))
    beta = np.where(step | is_flat, 0.0, beta)
    gamma = np.where(step, hi - lo, 0.0)
    return alpha, beta, gamma

  def _noise_td(self, noise_v, gains, start, onsets=None):
    """Band noise tables x interpolated band envelopes -> [2, n * hop]
    (`onsets`: the onset layout's (marks, ramps), see `_decode_window`)."""
    hop, n, half = self.hop, noise_v.shape[0], self.hop // 2
    amp = np.sqrt(np.concatenate([noise_v[:1], noise_v, noise_v[-1:]]))
    t1, t2 = self._tables
    src = (_cyclic(t1, start * hop, n * hop)
           + _cyclic(t2, start * hop, n * hop)).reshape(-1, 2 * n, half)
    m = np.arange(half, dtype=np.float32)
    marks, ramp = onsets or (None, self._ramp.astype(np.float32))
    out = np.empty((2, n * hop), np.float32)
    for c in range(2):
      alpha, beta, gamma = self._segments(
          amp * gains[c][:, self._band_region], marks)
      y = (np.einsum("sb,bsm->sm", alpha.astype(np.float32), src)
           + m * np.einsum("sb,bsm->sm", beta.astype(np.float32), src))
      if self.attack:
        y += ramp * np.einsum("sb,bsm->sm", gamma.astype(np.float32), src)
      out[c] = y.reshape(-1)
    return out

  def _tones(self, tone_v, gains, start, onsets=None):
    """Oscillator bank -> [2, n * hop], in half-frame segments.

    The amplitude is linear inside each half frame (its knots are the frame
    centres), so a segment of `half` samples starting at absolute sample s0
    is sum_k (alpha_k + beta_k m) sin(theta_k + omega_k m), m < half, with
    theta_k = 2 pi (f_k s0 / sr + phi_k) from the absolute index: one matrix
    product of per-segment coefficients [segments, 4S] with a fixed basis
    [4S, half] of cos/sin(omega m) and m cos/sin(omega m).
    """
    hop, n, half = self.hop, tone_v.shape[0], self.hop // 2
    amp = np.sqrt(2.0 * tone_v)
    amp = np.concatenate([amp[:1], amp, amp[-1:]])                # [n+2, S]
    seg = np.arange(2 * n)
    s0 = (start * hop + seg * half).astype(np.float64)
    cyc = (np.multiply.outer(s0, self._osc_freqs / self.sample_rate)
           + self.phase0) % 1.0                                      # [2n, O]
    sin_t, cos_t = np.sin(2 * np.pi * cyc), np.cos(2 * np.pi * cyc)
    out = np.empty((2, n * hop), np.float32)
    O = len(self._osc_freqs)
    marks, ramps = onsets or (None, None)
    for c in range(2):
      alpha, beta, gamma = self._segments(
          amp * gains[c][:, self._tone_region], marks)
      if ramps is None:
        coef = np.concatenate([alpha * sin_t, alpha * cos_t, beta * sin_t,
                               beta * cos_t, gamma * sin_t, gamma * cos_t],
                              -1).astype(np.float32)
        out[c] = (coef @ self._basis).reshape(-1)
        continue
      # Steps at a marked sample inside the segment: the step's sinusoids
      # (the basis's first rows) times the segment's own ramp.
      coef = np.concatenate([alpha * sin_t, alpha * cos_t, beta * sin_t,
                             beta * cos_t], -1).astype(np.float32)
      g = np.concatenate([gamma * sin_t, gamma * cos_t],
                         -1).astype(np.float32)
      y = coef @ self._basis[:4 * O] + ramps * (g @ self._basis[:2 * O])
      out[c] = y.reshape(-1)
    return out

  def _noise(self, noise_v, gains, start):
    """Overlap-added random-phase noise frames -> [2, n * hop]."""
    hop, n, N = self.hop, noise_v.shape[0], self.n_noise
    v = np.concatenate([noise_v[:1], noise_v, noise_v[-1:]])      # [n+2, B]
    logv = np.log(v[:, 1:] + 1e-30)
    lo, w = self._noise_lo, self._noise_w
    logp = logv[:, lo] * (1 - w) + logv[:, np.minimum(lo + 1, logv.shape[1]
                                                       - 1)] * w
    power = np.exp(logp) * self._noise_hi + v[:, :1] * self._noise_sub
    mag = np.sqrt(power * N).astype(np.float32)  # variance density -> |X|
    j = np.arange(start - 1, start + n + 1, dtype=np.int64)
    t1, t2 = self._phase_tables
    phase = t1[j % len(t1)] * t2[j % len(t2)]                       # [n+2,K]
    region = self._noise_region
    out = np.zeros((2, (n + 2) * hop + hop), np.float32)
    for c in range(2):
      g = gains[c][:, region]                                       # [n+2,K]
      frames = scipy.fft.irfft(mag * g * phase, n=N, axis=-1)
      frames = (frames * self.synth_window).astype(np.float32)      # [n+2,N]
      # padded frame i (absolute start - 1 + i) spans local samples
      # [(i - 1.5) hop, (i + 0.5) hop) relative to the window start; shift
      # by 1.5 hop so indices are non-negative.
      acc = frames.reshape(n + 2, 2, hop)
      out[c, :(n + 2) * hop] += acc[:, 0].reshape(-1)
      out[c, hop:(n + 3) * hop] += acc[:, 1].reshape(-1)
    # local sample s <-> out index s + 1.5 hop
    h = hop + hop // 2
    return out[:, h:h + n * hop]
