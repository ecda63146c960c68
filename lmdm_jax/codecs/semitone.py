"""`semitone`: semitone magnitudes + noise bands + bounded pan (no weights).

A weights-free codec with `mel`'s latent geometry (44.1 kHz stereo, hop
2048 -> 21.53 frames/s, 64 channels) built to keep the notes (issue 19):
one channel per equal-tempered semitone over the range where melody and
harmony live, decoded by an oscillator bank at exactly those pitches.

Layout of one latent frame [64] (defaults):
  [0 : 52)    semitone amplitudes, MIDI 36..87 (C2 65.4 Hz .. D#6 1245 Hz)
  [52 : 60)   noise bands: one sub band (20 Hz .. the lowest semitone's lower
              edge) and 7 bands log-spaced from the highest semitone's upper
              edge to 20 kHz
  [60 : 64)   pan of 4 frequency regions (MIDI 36..59 + sub band, 60..71,
              72..87, high noise bands), tanh-bounded

Analysis (deterministic; frame j covers samples [j * hop, (j + 1) * hop),
frame_centre = 0.5):
  semitones  Hann STFTs centred on the frame, of L, R and the mid
             M = (L + R) / 2, one size per range (`resolutions`: 8192
             samples for MIDI 36..47, 4096 for 48..71, 2048 for 72..87:
             long windows where semitones are a few Hz apart, short ones
             above for sharp onsets). Each FFT bin's energy goes to the
             semitone nearest the bin's instantaneous frequency (the phase
             advance of M over one sample), not the bin's centre, so a
             tone lands in its own semitone even where the FFT's main lobe
             is wider than a semitone. Stored: the variance of the sinusoid
             that would carry that energy, A^2 / 2.
  noise      Hann STFT of `noise_fft` = 2048; per band the mean bin power /
             sum(w^2), i.e. the variance density (white noise of variance
             s^2 gives s^2 in every band).
  pan        per region p = (E_L - E_R) / (E_L + E_R) in [-1, 1] from the
             same energies.
  Value latents are (ln(v + floor) - offset) / scale with offset -14 and
  scale 5.5 for semitones and noise alike: on 10 s excerpts of 11 Wesnoth
  tracks and 8 held-out demo renderings ln v had mean -14.1 and std 5.8, so
  latents of music have mean ~0 and std ~1 (silence: -1.6). Pan latents
  are atanh(p / PAN_MAX), clipped (std 0.3-0.65 on the same excerpts).

Synthesis (decode; lmdm_jax/codecs/semitone_synth.py, whose docstring
has the details): sine oscillators at the semitones, band-limited noise,
high bands partly as inferred harmonics, constant-power pan that cannot go
anti-phase; every output sample depends only on its absolute index and the
latent frames near it, so block-by-block decoding equals the whole decode.

Sub-pitch layout (`sub_pitch=True`, `SUB_PITCH_LAYOUT`; a different latent
format, so a model must be trained on it): the pan regions 60..71 and
72..87 become one (3 pan channels), and the last channel holds the
strongest semitone under the range (MIDI 24..35, C1..B1; by the mid's
instantaneous frequency in 8192-sample frames, as the semitones):
semitone i -> (i + 0.5) / 6 - 1, 0 where there is none. The decoder plays
`sub_share` (0.7) of the sub band's energy as a sine at that semitone
(its frame value floored into 0..11) and the rest as noise. On 32
recorded clips chord tone 0.878 -> 0.904 of raw (the bass line under C2
carries the chord's root there), musicnn FD 11.1 -> 11.1; on 32 held-out
demo clips 0.953 -> 0.968, FD 17.3 -> 17.2 (docs/codecs_and_import.md).

Onset layout (`onset_channel=True`, `ONSET_LAYOUT` = the sub-pitch layout
plus the onset channel; a different latent format, so a model must be
trained on it; the shipped demo model's since 2026-12-03): one pan region
fewer (2 with the sub pitch: tones + sub band, high noise bands) and, after
the pan channels, the frame's strongest note onset (`codecs/onsets.py`):
-1 for none, else 0.5 + its position in [0, 1) of the frame. The decoder
then steps each channel that rose into a marked frame once, at the marked
sample, and fades the output by `onset_dip` over `onset_fade` samples
before it; elsewhere envelopes are linear (`_marked_segments`). Streaming
stays exact with the same one frame of latency (two of history). Onset F1
of the round trip 0.741 -> 0.873 held-out, 0.701 -> 0.805 recorded;
musicnn FD 17.2 -> 22.0, 11.1 -> 14.1 (docs/codecs_and_import.md, "Onset
layout").

What it cannot carry: pitch outside MIDI 36..87 except as noise (a bass
below C2 is heard through its harmonics) or as inferred harmonics (above
1.25 kHz only partials on harmonics of the tones below survive),
non-tonal sound inside the semitone range (drums there become short
semitone clusters), and stereo detail finer than 4 regions.
"""
from __future__ import annotations

import numpy as np

from lmdm_jax.codecs import onsets
from lmdm_jax.codecs.base import Codec, WindowStreamDecoder, register_codec
from lmdm_jax.codecs.mel import stft
from lmdm_jax.codecs.semitone_synth import PAN_MAX, SemitoneSynthesis

# The sub-pitch layout (docs/codecs_and_import.md, "Sub pitch"): keyword
# arguments of SemitoneCodec, recorded in a package's codec kwargs.
SUB_PITCH_LAYOUT = {"sub_pitch": True, "sub_share": 0.7}
# The onset layout (the sub-pitch layout plus an onset channel; module
# docstring): what a model trained for sharp onsets records.
ONSET_LAYOUT = dict(SUB_PITCH_LAYOUT, onset_channel=True)


def midi_to_hz(m):
  return 440.0 * 2.0 ** ((np.asarray(m, np.float64) - 69.0) / 12.0)


@register_codec("semitone")
class SemitoneCodec(SemitoneSynthesis, Codec):
  """Semitone oscillator-bank codec; see the module docstring for the layout.

  Args:
    sample_rate, hop: audio rate and samples per latent frame.
    midi_lo, semitones: the lowest semitone (MIDI number) and how many.
    high_bands: noise bands above the semitone range (plus one sub band).
    offset, scale, floor: value latent = (ln(v + floor) - offset) / scale.
    resolutions: ((first MIDI, STFT size), ...) of the semitone analysis.
    noise_fft: STFT size of the noise-band analysis.
    noise_synth: "table" (default) or "stft" noise synthesis.
    attack, attack_db: fast-attack ramp (samples; 0 = always linear) and
      the rise (dB) that triggers it.
    sub_pitch, sub_share, sub_fft: the sub-pitch layout (see the module
      docstring) and the share of the sub band played as its tone; the
      STFT size of the sub pitch's analysis.
    onset_channel: the onset layout (an onset channel in place of a pan
      region; module docstring).
    onset_fade, onset_dip: decoder only: the output's fade before a marked
      onset (samples, 1 .. hop) and the gain it reaches (in (0, 1]; 1 =
      no fade).
    onset_gate_db: encoder: the smallest rise of the frame's values (dB,
      power-weighted mean over the semitones and noise bands of the
      positive change from the frame before to the frame after) at which
      a detected onset is kept (`onsets.onset_latent`).
    high_tonal: decoder only, in [0, 1]: the largest share of a high noise
      band's energy rendered as partials inferred from the semitones
      (harmonic extension, see `_extension`) instead of noise; 0 renders
      the bands as noise only. The latents do not change.
    blas_threads: BLAS threads while decoding (threadpoolctl, when
      installed; None leaves them alone). 1 by default: the decode's small
      matrix products gain nothing from a second thread and, on a busy
      2-core machine, wait for it (a 24-frame block took 23 ms median /
      68 ms p90 with 2 threads, 7 / 8 ms with 1, at load 7).
  """
  name = "semitone"
  frame_centre = 0.5        # frame j covers [j * hop, (j + 1) * hop)
  latent_neutral_kwargs = ("noise_synth", "attack", "attack_db", "high_tonal",
                        "sub_share", "blas_threads", "onset_fade",
                        "onset_dip")

  def __init__(self, sample_rate: int = 44100, hop: int = 2048,
               latent_channels: int = 64, midi_lo: int = 36,
               semitones: int = 52, high_bands: int = 7,
               offset: float = -14.0, scale: float = 5.5,
               floor: float = 1e-10,
               resolutions=((36, 8192), (48, 4096), (72, 2048)),
               noise_fft: int = 2048, noise_synth: str = "table",
               attack: int = 64, attack_db: float = 1.0,
               high_tonal: float = 0.8,
               sub_pitch: bool = False, sub_share: float = 1.0,
               sub_fft: int = 8192,
               onset_channel: bool = False, onset_fade: int = 1024,
               onset_dip: float = 0.7, onset_gate_db: float = 0.05,
               blas_threads: int | None = 1):
    if hop <= 0 or sample_rate <= 0 or hop % 2:
      raise ValueError(f"hop must be positive and even, sample_rate "
                       f"positive, got hop={hop}, sample_rate={sample_rate}")
    if semitones < 1 or high_bands < 1:
      raise ValueError(f"semitones and high_bands must be >= 1, got "
                       f"{semitones}, {high_bands}")
    if semitones + 1 + high_bands + 4 != latent_channels:
      raise ValueError(f"semitones + 1 + high_bands + 4 pan channels must be "
                       f"latent_channels={latent_channels}, got "
                       f"{semitones} + 1 + {high_bands} + 4")
    top = midi_to_hz(midi_lo + semitones - 0.5)
    if midi_lo < 12 or top * 2 ** (1 / 12) >= min(20000.0, sample_rate / 2):
      raise ValueError(f"semitone range MIDI {midi_lo}.."
                       f"{midi_lo + semitones - 1} must lie in 20 Hz .. "
                       f"{min(20000.0, sample_rate / 2)} Hz")
    if scale <= 0 or floor <= 0:
      raise ValueError("scale and floor must be positive")
    self.sample_rate, self.channels, self.hop = sample_rate, 2, hop
    self.latent_channels = latent_channels
    self.midi_lo, self.semitones, self.high_bands = midi_lo, semitones, \
        high_bands
    self.offset, self.scale, self.floor = offset, scale, floor
    if not 0.0 <= high_tonal <= 1.0:
      raise ValueError(f"high_tonal must be in [0, 1], got {high_tonal}")
    if high_tonal > 0 and semitones < 28:
      raise ValueError(f"the harmonic extension (high_tonal > 0) needs >= 28 "
                       f"semitones (partials up to two octaves and a major "
                       f"third below the first one), got {semitones}; pass "
                       f"high_tonal=0")
    self.high_tonal = float(high_tonal)
    # Sub pitch (layout option): 3 pan regions (36..59 + sub, 60..87, high)
    # and one channel with the strongest semitone below the range (MIDI
    # midi_lo - 12 .. midi_lo - 1), played as a tone with `sub_share` of the
    # sub band's energy.
    self.sub_pitch = bool(sub_pitch)
    if not 0.0 <= sub_share <= 1.0:
      raise ValueError(f"sub_share must be in [0, 1], got {sub_share}")
    if self.sub_pitch and (sub_fft < 1024 or sub_fft % 2):
      raise ValueError(f"sub_fft must be even and >= 1024, got {sub_fft}")
    if self.sub_pitch and midi_lo < 24:
      raise ValueError(f"sub_pitch needs midi_lo >= 24 (its 12 semitones "
                       f"lie under midi_lo), got {midi_lo}")
    self.sub_share, self.sub_fft = float(sub_share), int(sub_fft)
    self.onset_channel = bool(onset_channel)
    if self.onset_channel:
      if not 0 < onset_fade <= hop or not 0.0 < onset_dip <= 1.0:
        raise ValueError(f"onset_fade must be in 1 .. hop={hop} samples and "
                         f"onset_dip in (0, 1], got {onset_fade}, "
                         f"{onset_dip}")
      if noise_synth != "table" or attack < 1:
        raise ValueError("the onset layout decodes with noise_synth='table' "
                         "and attack >= 1 (its steps are attack ramps)")
      self._onsets = onsets.OnsetDetector(sample_rate)
    self.onset_fade, self.onset_dip = int(onset_fade), float(onset_dip)
    if onset_gate_db < 0:
      raise ValueError(f"onset_gate_db must be >= 0, got {onset_gate_db}")
    self.onset_gate_db = float(onset_gate_db)
    self._pan_regions = 4 - self.sub_pitch - self.onset_channel
    self._sub_midi = (np.arange(midi_lo - 12, midi_lo) if self.sub_pitch
                      else np.zeros(0, np.int64))
    # Extension oscillators (decoder only): whole semitones from the top of
    # the semitone range up to min(20 kHz, 0.45 sr) (MIDI 134 at 44.1 kHz).
    hi_top = int(np.floor(12 * np.log2(min(20000.0, 0.45 * sample_rate)
                                        / 440.0) + 69))
    self._ext_high = (np.arange(midi_lo + semitones, hi_top + 1)
                      if high_tonal > 0 else np.zeros(0, np.int64))
    osc_midi = np.concatenate([midi_lo + np.arange(semitones),
                               self._ext_high, self._sub_midi])
    self._osc_freqs = midi_to_hz(osc_midi)                        # [O]
    # Fixed per-oscillator phase offsets (golden-ratio spread).
    self.phase0 = (np.arange(len(osc_midi)) * 0.6180339887498949) % 1.0
    # Oscillator basis over half a frame (see _tones): sin(theta + w m) =
    # sin(theta) cos(w m) + cos(theta) sin(w m).
    m = np.arange(hop // 2)
    wm = 2 * np.pi * np.multiply.outer(self._osc_freqs / sample_rate, m)
    cw, sw = np.cos(wm), np.sin(wm)
    if not 0 <= attack <= hop // 2:
      raise ValueError(f"attack must be in [0, hop / 2 = {hop // 2}] "
                       f"samples, got {attack}")
    self.attack = int(attack)
    if blas_threads is not None and blas_threads < 1:
      raise ValueError(f"blas_threads must be >= 1 or None, got "
                       f"{blas_threads}")
    self.blas_threads = blas_threads
    self._limits = None
    if blas_threads is not None:
      try:
        from threadpoolctl import ThreadpoolController
        self._limits = ThreadpoolController()
      except ImportError:       # optional: decode runs either way
        pass
    self.attack_db = float(attack_db)
    self._attack_ratio = 10 ** (self.attack_db / 20)
    self._ramp = (np.minimum(1.0, (m + 0.5) / attack) if attack else
                  np.zeros(len(m)))
    self._basis = np.concatenate([cw, sw, m * cw, m * sw, self._ramp * cw,
                                  self._ramp * sw]).astype(np.float32)
    # Semitone analysis: one STFT size per range of semitones (long windows
    # for the bass, short ones above for sharper onsets).
    lo_edge = midi_to_hz(midi_lo - 0.5)
    starts = [int(m) for m, _ in resolutions]
    if (not resolutions or starts[0] > midi_lo or starts != sorted(starts)
        or any(int(n) < 64 or int(n) % 2 for _, n in resolutions)):
      raise ValueError(f"resolutions must be ((first MIDI, even n_fft), ...) "
                       f"ascending from <= midi_lo={midi_lo}, got "
                       f"{resolutions}")
    self._res = []
    for i, (m0, n_fft) in enumerate(resolutions):
      m1 = starts[i + 1] if i + 1 < len(starts) else midi_lo + semitones
      s0, s1 = max(0, m0 - midi_lo), min(semitones, m1 - midi_lo)
      if s1 <= s0:
        continue
      n_fft = int(n_fft)
      w = np.hanning(n_fft + 1)[:-1]
      bin_hz = sample_rate / n_fft
      bins = np.arange(max(1, int(midi_to_hz(midi_lo + s0 - 0.5) / bin_hz)
                           - 3),
                       min(n_fft // 2, int(midi_to_hz(midi_lo + s1 - 0.5)
                                            / bin_hz) + 4))
      self._res.append((n_fft, w, 2.0 / (n_fft * np.sum(w ** 2)), bins, s0,
                        s1))
    # Noise bands: synthesis on a 2 * hop grid, analysis on `noise_fft`.
    self.n_noise = 2 * hop
    if noise_fft < 64 or noise_fft % 2:
      raise ValueError(f"noise_fft must be even and >= 64, got {noise_fft}")
    self.noise_fft = noise_fft
    if noise_synth not in ("table", "stft"):
      raise ValueError(f"noise_synth must be 'table' or 'stft', got "
                       f"{noise_synth!r}")
    self.noise_synth = noise_synth
    self.noise_window = np.hanning(noise_fft + 1)[:-1]
    self.synth_window = np.sin(np.pi * (np.arange(self.n_noise) + 0.5)
                               / self.n_noise)        # sin^2 OLA sums to 1
    nf = np.fft.rfftfreq(self.n_noise, 1.0 / sample_rate)
    edges = np.geomspace(top, 20000.0, high_bands + 1)
    member = np.zeros((1 + high_bands, len(nf)))
    member[0] = (nf >= 20.0) & (nf < lo_edge)
    for b in range(high_bands):
      member[1 + b] = (nf >= edges[b]) & (nf < edges[b + 1])
    if (member.sum(1) == 0).any():
      raise ValueError("a noise band has no FFT bin; use fewer high_bands")
    self._noise_sum_w2 = np.sum(self.noise_window ** 2)
    af = np.fft.rfftfreq(noise_fft, 1.0 / sample_rate)
    amember = np.zeros((1 + high_bands, len(af)))
    amember[0] = (af >= 20.0) & (af < lo_edge)
    for b in range(high_bands):
      amember[1 + b] = (af >= edges[b]) & (af < edges[b + 1])
    if (amember.sum(1) == 0).any():
      raise ValueError("a noise band has no analysis FFT bin; raise "
                       "noise_fft or use fewer high_bands")
    self._noise_member = amember / amember.sum(1, keepdims=True)
    hi_r = self._pan_regions - 1
    self._noise_aregion = np.where(af < lo_edge, 0, np.where(af >= top, hi_r,
                                                             -1))
    # Synthesis spectrum: sub band flat; high bands linear in log power over
    # log frequency between band centres (held beyond the outer centres).
    centres = np.log(np.sqrt(edges[:-1] * edges[1:]))
    pos = np.interp(np.log(np.maximum(nf, 1.0)), centres,
                    np.arange(high_bands, dtype=np.float64))
    self._noise_lo = np.minimum(np.floor(pos).astype(np.int64),
                                max(high_bands - 2, 0))
    self._noise_w = (pos - self._noise_lo) if high_bands > 1 else 0 * pos
    self._noise_hi = ((nf >= top) & (nf <= 20000.0)).astype(np.float64)
    # Random phases: the product of two fixed tables indexed by the absolute
    # frame index modulo 61 and 67 (a period of 4087 frames, 190 s).
    rng = np.random.default_rng(19)
    self._phase_tables = [
        np.exp(2j * np.pi * rng.random((p, len(nf)))).astype(np.complex64)
        for p in (61, 67)]
    self._noise_sub = ((nf >= 20.0) & (nf < lo_edge)).astype(np.float64)
    # Time-domain noise: per band, two fixed band-limited noise tables of
    # coprime lengths (their sum repeats after days), each of variance
    # half the band's share of the spectrum, indexed by the absolute sample.
    band_edges = [(20.0, lo_edge)] + list(zip(edges[:-1], edges[1:]))
    self._band_region = np.array([0] + [hi_r] * high_bands)
    self._tables = []
    for length in (2 ** 17, 5 ** 7):      # coprime, fast FFT sizes
      f = np.fft.rfftfreq(length, 1.0 / sample_rate)
      tab = np.zeros((1 + high_bands, length), np.float32)
      for k, (lo, hi_f) in enumerate(band_edges):
        spec = ((f >= lo) & (f < hi_f)) * np.exp(2j * np.pi * rng.random(
            len(f)))
        x = np.fft.irfft(spec, n=length)
        share = (hi_f - lo) / (sample_rate / 2)
        tab[k] = x * np.sqrt(0.5 * share / np.mean(x ** 2))
      self._tables.append(tab)
    # Pan regions: oscillator -> region (extension oscillators pan with
    # their band), noise bin -> region.
    m = midi_lo + np.arange(semitones)
    mid_r = {3: np.where(m < 72, 1, 2), 2: 1, 1: 0}[hi_r]
    self._tone_region = np.concatenate([
        np.where(m < 60, 0, mid_r), np.full(len(self._ext_high), hi_r),
        np.zeros(len(self._sub_midi), np.int64)])
    # High extension oscillator -> its noise band (1..H).
    self._ext_band = 1 + np.clip(np.searchsorted(
        edges, midi_to_hz(self._ext_high), side="right") - 1, 0,
        high_bands - 1)
    self._band_share = np.array([(lo_edge - 20.0)] + list(
        edges[1:] - edges[:-1])) / (sample_rate / 2)
    self._noise_region = np.where(nf < lo_edge, 0, hi_r)
    if self.sub_pitch:
      w = np.hanning(self.sub_fft + 1)[:-1]
      bin_hz = sample_rate / self.sub_fft
      bins = np.arange(max(1, int(midi_to_hz(midi_lo - 12.5) / bin_hz) - 2),
                       int(lo_edge / bin_hz) + 2)
      self._sub_res = (w, bins)          # window, analysed bins

  # -- layout -------------------------------------------------------------------
  @property
  def slices(self):
    """(semitones, noise, pan) slices of a latent frame (the onset and sub
    pitch channels, where the layout has them, follow the pan ones)."""
    s, n = self.semitones, self.semitones + 1 + self.high_bands
    return slice(0, s), slice(s, n), slice(n, n + self._pan_regions)

  @property
  def onset_index(self):
    """The onset channel's index in a latent frame (None without one)."""
    if not self.onset_channel:
      return None
    return self.semitones + 1 + self.high_bands + self._pan_regions

  # -- analysis -------------------------------------------------------------
  def _frames(self, x, window, frames, shift=0):
    """STFT with frame j centred on sample (j + 0.5) * hop (+ shift)."""
    h = self.hop // 2 + shift
    return stft(x[..., h:], window, self.hop, frames)

  def encode(self, audio: np.ndarray) -> np.ndarray:
    """[2, samples] float32 -> [samples // hop, 64] float32 latents."""
    if self._limits is not None:
      with self._limits.limit(limits=self.blas_threads, user_api="blas"):
        return self._encode(audio)
    return self._encode(audio)

  def _encode(self, audio: np.ndarray) -> np.ndarray:
    audio = self.check_audio(audio).astype(np.float64)
    frames = audio.shape[1] // self.hop
    if frames == 0:
      raise ValueError(f"semitone codec needs at least hop={self.hop} "
                       f"samples, got {audio.shape[1]}")
    audio = audio[:, :frames * self.hop]
    S = self.semitones
    mid = 0.5 * (audio[0] + audio[1])
    tone = np.zeros((2, frames, S))
    for n_fft, w, norm, b, s0, s1 in self._res:
      # Energies of L and R per semitone of the mid's inst. frequency.
      spec = self._frames(audio, w, frames)[..., b]               # [2, F, B]
      _, semi = self._bin_semitones(mid, w, b, frames, self.midi_lo)
      ok = (semi >= s0) & (semi < s1)
      idx = (np.arange(frames)[:, None] * S + np.clip(semi, 0, S - 1))[ok]
      energy = np.square(np.abs(spec))                             # [2, F, B]
      tone += norm * np.stack([
          np.bincount(idx, weights=e[ok], minlength=frames * S)
          for e in energy]).reshape(2, frames, S)       # -> A^2 / 2
    # Noise bands: variance density per channel.
    nspec = self._frames(audio, self.noise_window, frames)
    npow = np.square(np.abs(nspec)) / self._noise_sum_w2           # [2, F, K]
    noise = npow @ self._noise_member.T                            # [2, F, 1+H]
    # Pan per region from channel energies.
    region, hi_r = self._tone_region[:S], self._pan_regions - 1
    eL = np.stack([tone[0][:, region == r].sum(-1) for r in range(hi_r)]
                  + [npow[0][:, self._noise_aregion == hi_r].sum(-1)], -1)
    eR = np.stack([tone[1][:, region == r].sum(-1) for r in range(hi_r)]
                  + [npow[1][:, self._noise_aregion == hi_r].sum(-1)], -1)
    # The sub band pans with the bass region.
    eL[:, 0] += npow[0][:, self._noise_aregion == 0].sum(-1)
    eR[:, 0] += npow[1][:, self._noise_aregion == 0].sum(-1)
    pan = (eL - eR) / np.maximum(eL + eR, 1e-20)
    pan = np.arctanh(np.clip(pan, -PAN_MAX + 1e-3, PAN_MAX - 1e-3) / PAN_MAX)
    values = np.concatenate([tone.mean(0), noise.mean(0)], -1)
    z = (np.log(values + self.floor) - self.offset) / self.scale
    parts = [z, pan]
    if self.onset_channel:
      parts.append(onsets.onset_latent(
          self._onsets, mid, values, self.hop, self.onset_gate_db,
          self.floor)[:, None])
    if self.sub_pitch:
      parts.append(self._sub_pitch_latent(mid, frames)[:, None])
    return np.concatenate(parts, -1).astype(np.float32)

  def value_rise_db(self, latents: np.ndarray) -> np.ndarray:
    """[frames, 64] latents -> [frames]: the onset gate's measure of the
    frames' value channels (`onsets.onset_latent`), e.g. to see whether a model's
    onset marks sit where its values rise (benchmarks/onset_channel.py)."""
    n = self.slices[1].stop
    v = np.exp(np.asarray(latents)[:, :n].astype(np.float64) * self.scale
               + self.offset) - self.floor
    return onsets.value_rise_db(np.clip(v, 0.0, None), self.floor)

  def _bin_semitones(self, mid, w, b, frames, midi0):
    """The mid's STFT at bins b ([F, B], window w) and, per bin, the
    semitone (MIDI - midi0) nearest its instantaneous frequency (the phase
    advance over one sample) [F, B]."""
    n_fft = len(w)
    m0 = self._frames(mid, w, frames)[..., b]
    m1 = self._frames(mid, w, frames, shift=1)[..., b]
    inst = np.angle(m1 * np.conj(m0)) * self.sample_rate / (2 * np.pi)
    bin_hz = b * self.sample_rate / n_fft
    # A bin whose inst. frequency is more than 2 bins from its centre is
    # not near a peak (leakage between two partials): use its centre.
    far = np.abs(inst - bin_hz) > 2 * self.sample_rate / n_fft
    inst = np.where(far | (np.abs(m0) < 1e-12), bin_hz, inst)
    semi = np.rint(12 * np.log2(np.maximum(inst, 1.0) / 440.0) + 69
                   - midi0).astype(np.int64)
    return m0, semi

  def _sub_pitch_latent(self, mid, frames):
    """[frames] in (-1, 1): the strongest semitone under the range (by the
    mid's instantaneous frequency, as the semitones), 0 where none has
    energy; semitone i of 12 -> (i + 0.5) / 6 - 1."""
    w, b = self._sub_res
    m0, semi = self._bin_semitones(mid, w, b, frames, self.midi_lo - 12)
    ok = (semi >= 0) & (semi < 12)
    idx = (np.arange(frames)[:, None] * 12 + np.clip(semi, 0, 11))[ok]
    e = np.bincount(idx, weights=np.square(np.abs(m0))[ok],
                    minlength=frames * 12).reshape(frames, 12)
    best = np.argmax(e, -1)
    return np.where(e.max(-1) > 0, (best + 0.5) / 6.0 - 1.0, 0.0)

  def decode(self, latents: np.ndarray) -> np.ndarray:
    """[frames, 64] latents -> [2, frames * hop] float32 audio."""
    latents = self.check_latents(latents)
    if latents.shape[0] == 0:
      raise ValueError("semitone codec cannot decode zero frames")
    return self.decode_window(latents, 0)

  def stream_decoder(self) -> WindowStreamDecoder:
    """Exact block-by-block decode (one frame, 46 ms, held back)."""
    return WindowStreamDecoder(self, radius=1,
                               history=2 if self.onset_channel else 1)
