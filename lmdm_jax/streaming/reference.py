"""Uncached full-sequence forwards: what a stream must equal.

`sequence_forward` runs the model once over a whole sequence of frames
(clean history followed by the noisy current block) with any mask and RoPE
table, with nothing cached. The streaming contract tests compare every
cached step against it, and `lmdm bench bc-history` uses it to measure how
far a block-causal stream (whose cached keys carry history from beyond the
window) drifts from the fixed-window forward the paper's code trains on.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.model import masks
from lmdm_jax.model.dit import DiT
from lmdm_jax.model.rope import RopeTable, rope_table
from lmdm_jax.streaming.state import Controls, StreamSpec, known_features


def make_sequence_forward(spec: StreamSpec, params):
  """Jitted forward: (x [B,N,C], t [B], controls, known [N], mask
  [N+1,N+1], table) -> v [B,N,C].

  Frames with known = 1 are clean history (router zeroes their noisy input,
  input-add carries their latents); known = 0 frames are being denoised.
  Mask and table are traced, so sequences of one length compile once.
  frame_controls: optional {name: [B,N,dim+1]} time-aligned controls of
  the N frames, used as given (no visibility cut).
  """
  model = DiT(spec.model)

  @jax.jit
  def forward(x, t, controls: Controls, known, mask, table: RopeTable,
              frame_controls=None):
    cond = model.apply({"params": params}, controls.cross_tokens,
                       controls.global_cond, method=DiT.condition)
    feats = known_features(spec, x) * known[None, :, None]
    out, _ = model.apply({"params": params}, x * (1 - known)[None, :, None],
                         t, cond, table, table, feats, 1.0 - known, None,
                         mask, controls=frame_controls, method=DiT.tokens)
    return out
  return forward


def bc_history_inputs(spec: StreamSpec, n_cur: int, n_total: int):
  """Mask and RoPE table for a block-causal sequence of n_cur real frames
  padded to n_total.

  Padding frames (>= n_cur) are invisible to every earlier query under the
  block-causal mask, so outputs of frames < n_cur equal the unpadded
  forward exactly. The global token belongs to the current chunk and takes
  position n_cur - T: 0 in window-relative terms, as in a stream.
  """
  g = spec.geometry
  ids = np.arange(n_total) // g.block
  q = np.concatenate([ids, [(n_cur - 1) // g.block]])
  mask = masks.block_causal_from_chunks(q, q, g.window_chunks)
  pos = np.concatenate([np.arange(1, n_total + 1), [n_cur - g.window]])
  return jnp.asarray(mask), rope_table(pos, spec.model.rotary_dim,
                                       spec.model.rope_base)


def window_inputs(spec: StreamSpec):
  """Mask, table and `known` of one training window [context | block]."""
  g = spec.geometry
  mask = masks.window_mask(g.mode, g.window, g.context, g.block,
                           g.window_chunks)
  if mask is None:
    mask = np.ones((g.window + 1, g.window + 1), bool)
  table = rope_table(np.concatenate([np.arange(1, g.window + 1), [0]]),
                     spec.model.rotary_dim, spec.model.rope_base)
  known = np.r_[np.ones(g.context), np.zeros(g.block)].astype(np.float32)
  return jnp.asarray(mask), table, jnp.asarray(known)
