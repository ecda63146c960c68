"""Controls over a stream's timeline, and the live input behind them.

A stream's output timeline counts latent frames from its first generated
frame: block i covers frames [i * o, (i + 1) * o) and its window [context |
block] covers [i * o - s, (i + 1) * o). Controls are given per window
(`LiveSession.set_frame_controls`), so a whole performance's controls are a
`ControlTrack`: name -> packed [frames, dim + 1] over the timeline, sliced
per block (`window`), absent (zeros) outside its frames.

Where the controls come from:

  `sketch_track`     a file's sketch features (loudness, brightness, pitch,
                     top-k CQT; lmdm_jax/data/controls.py), known ahead:
                     `lmdm generate --sketch FILE`
  `partner_track`    a file's codec latents as the "partner" control:
                     `lmdm generate --accompany FILE` (the model's partner
                     visibility t_f hides what a live player could not have
                     heard yet)
  live input         audio that arrives while the stream plays: see
                     lmdm_jax/live/live_input.py (the generative delay).

Shapes: frames are latent frames at the codec's frame rate; audio is
[channels, samples] at the codec's sample rate.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from lmdm_jax.data import controls as extract
from lmdm_jax.model import control_inputs as inputs


class ControlTrack:
  """Packed controls over the output timeline: name -> [frames, dim + 1].

  `delay` shifts the track later: the window for timeline frame f reads
  the track at f - delay (a generative delay applied to known controls).
  """

  def __init__(self, controls: Dict[str, np.ndarray], delay: int = 0):
    if not controls:
      raise ValueError("a control track needs at least one control")
    lens = {n: np.shape(a)[0] for n, a in controls.items()}
    for n, a in controls.items():
      if np.ndim(a) != 2 or np.shape(a)[1] < 2:
        raise ValueError(f"control {n!r} must be packed [frames, dim + 1], "
                         f"got shape {np.shape(a)}")
    if len(set(lens.values())) != 1:
      raise ValueError(f"controls of a track must have the same number of "
                       f"frames, got {lens}")
    if delay < 0:
      raise ValueError(f"delay must be >= 0 frames, got {delay}")
    self.controls = {n: np.asarray(a, np.float32) for n, a in controls.items()}
    self.frames = next(iter(lens.values()))
    self.delay = int(delay)

  def window(self, start: int, length: int) -> Dict[str, np.ndarray]:
    """name -> [length, dim + 1] for timeline frames [start, start +
    length); frames outside the track are absent."""
    out = {}
    lo = start - self.delay
    for n, a in self.controls.items():
      w = np.zeros((length, a.shape[1]), np.float32)
      s0, s1 = max(lo, 0), min(lo + length, self.frames)
      if s1 > s0:
        w[s0 - lo:s1 - lo] = a[s0:s1]
      out[n] = w
    return out

  def block_window(self, block: int, context: int, block_frames: int):
    """The window of block `block`: frames [block * o - s, (block+1) * o)."""
    return self.window(block * block_frames - context, context + block_frames)


def _check_audio(audio) -> np.ndarray:
  x = np.asarray(audio, np.float32)
  if x.ndim != 2 or x.shape[1] == 0:
    raise ValueError(f"audio must be [channels, samples] with samples > 0, "
                     f"got shape {np.shape(audio)}")
  if not np.isfinite(x).all():
    raise ValueError("audio holds NaN or inf")
  return x


def sketch_names(model_controls: Dict[str, int],
                 wanted: Optional[Sequence[str]] = None) -> list:
  """The sketch controls to take from audio: `wanted` (checked against the
  model's), or all of the model's audio controls."""
  have = [n for n in model_controls if n in extract.AUDIO_CONTROLS]
  if not have:
    raise ValueError(f"this model has no sketch controls (it has "
                     f"{sorted(model_controls) or 'none'})")
  if not wanted:
    return have
  bad = [n for n in wanted if n not in have]
  if bad:
    raise ValueError(f"the model has no control(s) {bad}; it has {have}")
  return list(dict.fromkeys(wanted))


def sketch_track(audio, codec, names: Sequence[str], frames: int,
                 pitch_method: str = "yin", delay: int = 0,
                 cqt_bins: int = 84) -> ControlTrack:
  """Sketch features of `audio` [channels, samples] (codec rate) over
  `frames` timeline frames (audio shorter than that: absent after it)."""
  x = _check_audio(audio)
  have = int(x.shape[1] / codec.sample_rate * codec.frame_rate)
  n = max(1, min(frames, have))
  feats = extract.extract(list(names), x, codec.sample_rate,
                          codec.frame_rate, n, pitch_method=pitch_method,
                          cqt_bins=cqt_bins, frame_centre=codec.frame_centre)
  return ControlTrack(feats, delay=delay)


def partner_track(audio, codec, delay: int = 0) -> ControlTrack:
  """The partner control: `audio`'s codec latents, packed with mask 1."""
  x = _check_audio(audio)
  z = np.asarray(codec.encode(x), np.float32)
  return ControlTrack({inputs.PARTNER: inputs.pack(z)}, delay=delay)
