"""Self-attention masks of the three generation modes, built on the host.

Token layout of every forward: the audio frames in order, then the global
(timestep + seconds) token last. Masks are boolean [queries, keys] numpy
arrays (True = may attend); they depend only on static geometry, so they are
constants of the compiled program.

- full: bidirectional (SAO, and the `outpaint` baseline).
- ed: context frames (index < s) attend only to context; target frames and
  the global token attend to everything. Context states are therefore
  independent of the noisy target and of the timestep token.
- bc: chunk q = frame // block attends to chunks q-W+1..q; the global token
  belongs to the last chunk. Over a long sequence this is sliding-window
  attention at chunk granularity.
"""
from __future__ import annotations

import numpy as np


def full_mask(n_frames: int) -> None:
  """No mask needed: returns None so attention skips masking."""
  del n_frames
  return None


def ed_mask(n_frames: int, context: int) -> np.ndarray:
  """[N+1, N+1] encoder-decoder mask for a window of `n_frames` frames."""
  idx = np.arange(n_frames + 1)
  q, k = idx[:, None], idx[None, :]
  return (k < context) | (q >= context)


def chunk_ids(n_frames: int, block: int, first_chunk: int = 0) -> np.ndarray:
  """Chunk index of each frame plus the global token (last chunk)."""
  ids = np.arange(n_frames) // block + first_chunk
  return np.concatenate([ids, ids[-1:]])


def block_causal_from_chunks(q_chunks, k_chunks, window_chunks: int):
  """Allowed iff q - W + 1 <= k <= q for chunk ids of queries and keys."""
  q = np.asarray(q_chunks)[:, None]
  k = np.asarray(k_chunks)[None, :]
  return (k <= q) & (k >= q - window_chunks + 1)


def bc_mask(n_frames: int, block: int, window_chunks: int) -> np.ndarray:
  """[N+1, N+1] block-causal sliding mask; N must be a multiple of block."""
  if n_frames % block:
    raise ValueError(f"bc mask needs n_frames ({n_frames}) to be a multiple "
                     f"of block ({block}).")
  ids = chunk_ids(n_frames, block)
  return block_causal_from_chunks(ids, ids, window_chunks)


def window_mask(mode: str, n_frames: int, context: int, block: int,
                window_chunks: int):
  """The training/full-window mask of `mode` for a window of n_frames."""
  if mode == "outpaint":
    return full_mask(n_frames)
  if mode == "ed":
    return ed_mask(n_frames, context)
  if mode == "bc":
    return bc_mask(n_frames, block, window_chunks)
  raise ValueError(f"unknown mode {mode!r}")
