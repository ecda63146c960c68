"""Evening out a model's level across the frames of its blocks.

    level = block_level.for_package(pkg, codec)   # None: nothing to even out
    latents = level(latents)                       # [block, C] -> [block, C]

Why: the shipped demo model starts every block louder than it ends — its
spectra flatten with distance from the context, so the first frames carry
more energy than the block's body — and the audio pulses at the block
rate: as `lmdm generate` plays 12 s prompt-only clips, a block's first
6 frames sit 1.8 dB above its body and its last ones 0.7-0.9 dB below (a
1.6 dB level jump at every 1.11 s seam on 32 held-out clips;
`benchmarks/block_profile.py`, docs/demo-model.md). No sampler setting
removes it. Until a model that does not do it is trained, the stream evens
the profile out: a package may carry `defaults.block_level_db`, one value
per frame of a block, the level (dB) its model's generations have at that
position relative to the block's body, measured on training prompts as
played (`benchmarks/block_profile.py --generated N --calibrate PKG`); each
generated block's value channels are lowered by it before decoding, so
every position plays at the body's level. The model's latents and its
context stay untouched: only what is decoded changes. The profile is
measured at the package's default steps and CFG; other settings tilt
somewhat differently and get the same correction.

Only for codecs whose value channels are log energies (`semitone`:
latent = (ln v - offset) / scale over `codec.slices[0..1]`): a dB shift of
every value channel is then an exact gain of those components.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np


class BlockLevel:
  """Subtracts a per-position level profile [block] (dB) from the value
  channels of each generated block [block, C]."""

  def __init__(self, codec, level_db: Sequence[float]):
    level_db = np.asarray(level_db, np.float64)
    if level_db.ndim != 1 or not level_db.size or \
        not np.all(np.isfinite(level_db)) or np.abs(level_db).max() > 12:
      raise ValueError(f"block_level_db must be a non-empty list of finite "
                       f"dB values within +-12, got {level_db.tolist()}")
    if not (hasattr(codec, "slices") and hasattr(codec, "scale")):
      raise ValueError(f"block_level_db needs a codec whose value channels "
                       f"are log energies (semitone); {codec.name!r} has "
                       f"none")
    self.block = level_db.size
    self.level_db = level_db
    self.channels = slice(0, codec.slices[1].stop)
    # dB of energy -> latent units: ln(10) / 10 per dB, over the scale.
    self._shift = (-level_db * math.log(10.0) / 10.0 / codec.scale
                   ).astype(np.float32)

  def __call__(self, latents: np.ndarray) -> np.ndarray:
    z = np.array(latents, np.float32, copy=True)
    if z.ndim != 2 or z.shape[0] != self.block:
      raise ValueError(f"BlockLevel takes one block [{self.block}, C], got "
                       f"shape {z.shape}")
    z[:, self.channels] += self._shift[:, None]
    return z


def for_package(pkg, codec) -> Optional[BlockLevel]:
  """The package's calibrated block level profile, or None when it has
  none (then blocks are decoded as generated)."""
  level = pkg.defaults.get("block_level_db")
  if level is None:
    return None
  out = BlockLevel(codec, level)
  if out.block != pkg.geometry.block:
    raise ValueError(f"defaults.block_level_db has {out.block} values, the "
                     f"model's blocks {pkg.geometry.block} frames")
  return out
