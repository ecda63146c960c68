"""Sketch controls of a clip, packed for the model: name -> [frames, dim+1].

`extract` runs the feature functions of `features.py` on one clip, maps
them to the model's scale (`inputs.normalise`) and packs [values, mask]
(`inputs.pack`), which is what `lmdm data build --controls ...` stores per
record (`control_<name>`) and what the training pipeline crops into
windows. Dims: loudness 1, brightness 1, pitch 1 (voiced flag = mask),
cqt_topk `n_bins` (84 by default).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from lmdm_jax.data import features
from lmdm_jax.model import control_inputs as inputs

AUDIO_CONTROLS = ("loudness", "brightness", "pitch", "cqt_topk")


def dims(names: Sequence[str], cqt_bins: int = 84) -> Dict[str, int]:
  """name -> model dim of audio controls."""
  out = {}
  for n in names:
    if n not in AUDIO_CONTROLS:
      raise ValueError(f"unknown audio control {n!r}; known: "
                       f"{AUDIO_CONTROLS}")
    out[n] = cqt_bins if n == "cqt_topk" else 1
  return out


def extract(names: Sequence[str], audio, sample_rate: int,
            frame_rate: float, frames: int, pitch_method: str = "pyin",
            cqt_bins: int = 84, cqt_k: int = 4,
            a_weighting: bool = False,
            frame_centre: float = 0.0) -> Dict[str, np.ndarray]:
  """Packed, normalised controls {name: [frames, dim + 1]} of one clip.

  The features of frame j are centred on (j + frame_centre) / frame_rate
  seconds: pass the codec's `frame_centre` (mel 0, Oobleck 0.5) so that
  they line up with its latents. The features are centred on
  j / frame_rate, so the audio's first frame_centre frames are dropped.
  """
  dims(names, cqt_bins)
  if not 0.0 <= frame_centre < 1.0:
    raise ValueError(f"frame_centre must be in [0, 1), got {frame_centre}")
  skip = int(round(frame_centre * sample_rate / frame_rate))
  if skip:
    audio = np.asarray(audio)[..., skip:]
  out = {}
  for n in names:
    mask = None
    if n == "loudness":
      v = features.loudness(audio, sample_rate, frame_rate, frames,
                            a_weighting=a_weighting)
    elif n == "brightness":
      v = features.brightness(audio, sample_rate, frame_rate, frames)
    elif n == "pitch":
      v, mask = features.pitch(audio, sample_rate, frame_rate, frames,
                               method=pitch_method)
    else:
      v = features.cqt_topk(audio, sample_rate, frame_rate, frames, k=cqt_k,
                            n_bins=cqt_bins)
    out[n] = inputs.pack(inputs.normalise(n, v), mask)
  return out


def from_curve(name: str, points, frames: int, frame_rate: float,
               kind: str = "linear", hold: bool = False) -> np.ndarray:
  """A drawn curve (time_s, value in the feature's natural unit) -> packed
  [frames, 2] for a 1-dim control (loudness, brightness, pitch)."""
  if name not in ("loudness", "brightness", "pitch"):
    raise ValueError(f"curves draw 1-dim controls (loudness, brightness, "
                     f"pitch), got {name!r}")
  v, mask = features.curve_to_frames(points, frames, frame_rate, kind, hold)
  return inputs.pack(inputs.normalise(name, v), mask)
