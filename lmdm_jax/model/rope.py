"""Partial rotary position embeddings (stable-audio-tools convention).

SAO rotates the first `rotary_dim = max(head_dim // 2, 32)` channels of every
head with the rotate-half (non-interleaved) layout and leaves the rest alone.
The global token takes position 0 and audio frame j of a window position
j + 1 (SAO prepends the token; LMDM postpends it and rolls the frequencies so
the positions are the same).

Tables are built on the host in float64 and then cast: positions are Python
or numpy integers known at trace time (window-relative offsets of a fixed
geometry), so the tables are exact constants of the compiled program. This is
what keeps a stream bounded and exact: a cache never stores rotated keys, it
stores normalised, unrotated keys and rotates them on read with the
window-relative position of their slot, so nothing drifts however many times
the window slides.
"""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np


class RopeTable(NamedTuple):
  cos: jnp.ndarray  # [N, R]
  sin: jnp.ndarray  # [N, R]


def rope_table(positions, rotary_dim: int, base: float = 10000.0,
               dtype=jnp.float32) -> RopeTable:
  """Cos/sin tables for integer `positions` ([N]), computed in float64."""
  positions = np.asarray(positions, dtype=np.float64)
  inv_freq = 1.0 / (base ** (np.arange(0, rotary_dim, 2, dtype=np.float64)
                             / rotary_dim))
  angles = positions[:, None] * inv_freq[None, :]
  angles = np.concatenate([angles, angles], axis=-1)
  return RopeTable(jnp.asarray(np.cos(angles), dtype),
                   jnp.asarray(np.sin(angles), dtype))


def concat_tables(*tables: RopeTable) -> RopeTable:
  return RopeTable(jnp.concatenate([t.cos for t in tables], axis=0),
                   jnp.concatenate([t.sin for t in tables], axis=0))


def _rotate_half(x):
  x1, x2 = jnp.split(x, 2, axis=-1)
  return jnp.concatenate([-x2, x1], axis=-1)


def apply_rope(x: jnp.ndarray, table: RopeTable) -> jnp.ndarray:
  """Rotates the first R channels of `x` [B, N, H, E] (float32 math)."""
  r = table.cos.shape[-1]
  dtype = x.dtype
  x = x.astype(jnp.float32)
  rot, rest = x[..., :r], x[..., r:]
  cos = table.cos[None, :, None, :]
  sin = table.sin[None, :, None, :]
  rot = rot * cos + _rotate_half(rot) * sin
  return jnp.concatenate([rot, rest], axis=-1).astype(dtype)
