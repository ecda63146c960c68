"""Evening out a model's level across the frames of its blocks.

    level = block_level.for_package(pkg, codec)   # None: nothing to even out
    latents = level(latents, cfg=3.0)              # [block, C] -> [block, C]

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
context stay untouched: only what is decoded changes.

The tilt depends on the guidance scale (the onset demo model starts its
blocks 1.7 dB *below* their body at CFG 7 and above it at CFG 1.5), and a
live performer changes the CFG from block to block, so a package may also
carry `defaults.block_level_db_by_cfg`, {"<cfg>": [block] dB}, profiles
measured at several scales (`block_profile.py --cfg C --calibrate PKG`
adds one); a block generated at scale c gets the profile interpolated
linearly between the two measured scales around c (the nearest one outside
their range). Without a table, `block_level_db` (measured at the package's
default CFG) serves every scale. Other step counts and samplers tilt
somewhat differently and get the same correction.

Only for codecs whose value channels are log energies (`semitone`:
latent = (ln v - offset) / scale over `codec.slices[0..1]`): a dB shift of
every value channel is then an exact gain of those components.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np


def _checked(level_db, what: str) -> np.ndarray:
  level_db = np.asarray(level_db, np.float64)
  if level_db.ndim != 1 or not level_db.size or \
      not np.all(np.isfinite(level_db)) or np.abs(level_db).max() > 12:
    raise ValueError(f"{what} must be a non-empty list of finite dB values "
                     f"within +-12, got {level_db.tolist()}")
  return level_db


class BlockLevel:
  """Subtracts a per-position level profile [block] (dB) from the value
  channels of each generated block [block, C]: `level_db`, or with
  `by_cfg` ({cfg scale: [block] dB}) the profile interpolated at the
  block's CFG scale."""

  def __init__(self, codec, level_db: Sequence[float],
               by_cfg: Optional[Mapping] = None):
    level_db = _checked(level_db, "block_level_db")
    if not (hasattr(codec, "slices") and hasattr(codec, "scale")):
      raise ValueError(f"block_level_db needs a codec whose value channels "
                       f"are log energies (semitone); {codec.name!r} has "
                       f"none")
    self.block = level_db.size
    self.level_db = level_db
    self.cfgs, self.table = None, None
    if by_cfg:
      try:
        items = sorted((float(k), v) for k, v in by_cfg.items())
      except (TypeError, ValueError, AttributeError):
        raise ValueError(f"block_level_db_by_cfg must map CFG scales to "
                         f"profiles, got {by_cfg!r}") from None
      table = [_checked(v, f"block_level_db_by_cfg[{k:g}]")
               for k, v in items]
      if any(t.size != self.block for t in table):
        raise ValueError(f"block_level_db_by_cfg profiles must have "
                         f"{self.block} values (block_level_db's)")
      self.cfgs = np.array([k for k, _ in items])
      self.table = np.stack(table)
    self.channels = slice(0, codec.slices[1].stop)
    # dB of energy -> latent units: ln(10) / 10 per dB, over the scale.
    self._per_db = math.log(10.0) / 10.0 / codec.scale

  def profile(self, cfg: Optional[float] = None) -> np.ndarray:
    """[block] dB subtracted from a block generated at guidance `cfg`."""
    if cfg is None or self.table is None:
      return self.level_db
    return np.array([np.interp(float(cfg), self.cfgs, col)
                     for col in self.table.T])

  def __call__(self, latents: np.ndarray,
               cfg: Optional[float] = None) -> np.ndarray:
    z = np.array(latents, np.float32, copy=True)
    if z.ndim != 2 or z.shape[0] != self.block:
      raise ValueError(f"BlockLevel takes one block [{self.block}, C], got "
                       f"shape {z.shape}")
    shift = (-self.profile(cfg) * self._per_db).astype(np.float32)
    z[:, self.channels] += shift[:, None]
    return z


def for_package(pkg, codec) -> Optional[BlockLevel]:
  """The package's calibrated block level profile (with its per-CFG table
  when it has one), or None when it has none (then blocks are decoded as
  generated)."""
  level = pkg.defaults.get("block_level_db")
  if level is None:
    if pkg.defaults.get("block_level_db_by_cfg"):
      raise ValueError("defaults.block_level_db_by_cfg needs "
                       "defaults.block_level_db (the default CFG's profile)")
    return None
  out = BlockLevel(codec, level, pkg.defaults.get("block_level_db_by_cfg"))
  if out.block != pkg.geometry.block:
    raise ValueError(f"defaults.block_level_db has {out.block} values, the "
                     f"model's blocks {pkg.geometry.block} frames")
  return out
