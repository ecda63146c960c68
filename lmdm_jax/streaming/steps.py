"""The streaming forwards: prefill, cache update and one denoising step.

All functions are pure: `(params, spec, state, ...) -> (state, ...)`, with
`spec` static. Window positions (RoPE) are window-relative and fixed: frame
j of the window [context | block] has position j + 1 and the global token 0,
so every call of a given kind uses the same constant tables however long
the stream runs.

Per block, with K denoising steps (tokens processed per network call):

  outpaint  K x (s + o + 1)                 whole window every step
  ed        s (prefill) + K x (o + 1)       context once per block
  bc        (2o + 1) + (K - 1) x (o + 1)    newest chunk fused into step 1

For bc the cache holds the keys/values of the W-1 chunks before the newest
context chunk ("pending"). The first step of a block processes
[pending | target | global] against that cache with the block-causal mask,
then drops the oldest cached chunk and appends pending's keys/values: the
cache update costs no extra forward pass (the paper code's fused step).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.diffusion import flow
from lmdm_jax.model import control_inputs
from lmdm_jax.model import masks
from lmdm_jax.model.dit import DiT, KV, Conditioning
from lmdm_jax.model.rope import rope_table
from lmdm_jax.streaming.state import (Controls, StreamSpec, StreamState,
                                      check_controls, check_latents,
                                      empty_kv, known_features,
                                      tile_branches, unknown_features)


def _table(spec: StreamSpec, positions):
  m = spec.model
  return rope_table(np.asarray(positions), m.rotary_dim, m.rope_base)


def _model(spec: StreamSpec) -> DiT:
  return DiT(spec.model)


def window_controls(spec: StreamSpec, controls: Controls) -> dict:
  """The block's window controls after the partner visibility cut."""
  return control_inputs.cut_controls(dict(controls.frame_controls),
                                     spec.partner_cutoff)


def _controls(spec: StreamSpec, state: StreamState, start: int, stop: int,
              pad: int = 0):
  """Window frames [start, stop) of the state's controls, tiled over the
  CFG branches, `pad` absent frames appended; None when there are none."""
  if not state.frame_controls:
    return None
  fc = control_inputs.slice_frames(state.frame_controls, start, stop)
  fc = {n: tile_branches(spec, a) for n, a in fc.items()}
  return control_inputs.pad_frames(fc, pad)


def conditioning(params, spec: StreamSpec, controls: Controls) -> Conditioning:
  """Embeds the block's conditioning (and the null branch under CFG)."""
  cross = controls.cross_tokens if spec.model.cond_token_dim else None
  glob = controls.global_cond if spec.model.global_cond_dim else None
  if spec.cfg and cross is not None:
    cross = jnp.concatenate([cross, jnp.zeros_like(cross)], axis=0)
  if glob is not None:
    glob = tile_branches(spec, glob)
  return _model(spec).apply({"params": params}, cross, glob,
                            method=DiT.condition)


def _prefill(params, spec: StreamSpec, context, cond, frames: int, mask,
             controls=None):
  """Keys/values of the first `frames` context frames (no global token)."""
  ctx = tile_branches(spec, context[:, :frames])
  table = _table(spec, np.arange(1, frames + 1))
  return _model(spec).apply(
      {"params": params}, jnp.zeros_like(ctx), cond, table, table,
      known_features(spec, ctx), np.zeros(frames, np.float32), None, mask,
      controls, method=DiT.frames_only)


def prefill_ed(params, spec: StreamSpec, context, cond,
               frame_controls=None) -> KV:
  """ED: all s context frames, bidirectional among themselves.

  frame_controls: the window controls (state.frame_controls) or None.
  """
  s = spec.geometry.context
  fc = None if not frame_controls else {
      n: tile_branches(spec, a[:, :s]) for n, a in frame_controls.items()}
  return _prefill(params, spec, context, cond, s, None, fc)


def prefill_bc(params, spec: StreamSpec, context, cond,
               frame_controls=None) -> KV:
  """BC: context minus its newest chunk, block-causal; keeps W-1 chunks."""
  g = spec.geometry
  frames = g.context - g.block
  fc = None if not frame_controls else {
      n: tile_branches(spec, a[:, :frames])
      for n, a in frame_controls.items()}
  kv = _prefill(params, spec, context, cond, frames,
                masks.block_causal_from_chunks(
                    np.arange(frames) // g.block,
                    np.arange(frames) // g.block, g.window_chunks), fc)
  keep = g.cache_frames
  return KV(kv.k[:, :, frames - keep:], kv.v[:, :, frames - keep:])


def init_state(params, spec: StreamSpec, context, controls: Controls):
  """A stream primed on `context` [B, s, C] (real audio latents or zeros)."""
  check_latents(spec, context, spec.geometry.context, "context")
  check_controls(spec, controls)
  context = jnp.asarray(context, jnp.float32)
  cond = conditioning(params, spec, controls)
  fc = window_controls(spec, controls)
  mode = spec.geometry.mode
  if mode == "bc":
    kv = prefill_bc(params, spec, context, cond, fc)
  elif mode == "ed":
    kv = prefill_ed(params, spec, context, cond, fc)
  else:
    kv = empty_kv(spec)
  zero = jnp.zeros((), jnp.int32)
  return StreamState(context=context, kv=kv, cond=cond,
                     seed=jnp.asarray(controls.seed, jnp.int32), step=zero,
                     block=zero, rejected=zero, frame_controls=fc)


def cache_update(params, spec: StreamSpec, state: StreamState,
                 controls: Controls) -> StreamState:
  """Prepares the caches for the next block under new controls.

  ED re-encodes the (slid) context once; BC and outpaint only embed the new
  conditioning (BC writes the newest chunk in the next fused step). The
  controls' frame controls (window [context | block]) are cut at the
  partner visibility and kept in the state for this block's steps; BC's
  cached chunks keep the controls they were encoded with, unless
  `spec.reencodes_context` (a partner at t_f < 0): then BC re-encodes its
  context like the prefill, so chunks see partner frames that became
  visible since they were encoded.
  """
  cond = conditioning(params, spec, controls)
  fc = window_controls(spec, controls)
  kv = state.kv
  if spec.geometry.mode == "ed":
    kv = prefill_ed(params, spec, state.context, cond, fc)
  elif spec.reencodes_context:
    kv = prefill_bc(params, spec, state.context, cond, fc)
  return state.replace(kv=kv, cond=cond, seed=controls.seed,
                       step=jnp.zeros((), jnp.int32), frame_controls=fc)


def append_block(spec: StreamSpec, state: StreamState, clean) -> StreamState:
  """Slides the finished block [B, o, C] into the context."""
  g = spec.geometry
  context = jnp.concatenate([state.context[:, g.block:], clean], axis=1)
  return state.replace(context=context, step=jnp.zeros((), jnp.int32),
                       block=state.block + 1)


def split_branches(spec: StreamSpec, out):
  """Model output [B*, ...] -> (conditional [B, ...], unconditional [B,
  ...] or None without a CFG branch)."""
  if spec.cfg:
    return out[:spec.batch], out[spec.batch:]
  return out, None


def _target_call(params, spec, state, x_t, t, prefix_positions, prefix):
  """Target frames + global token against a prefix.

  Target frames see the whole prefix and each other, so no mask is needed,
  except to hide the zero padding frames of `StreamSpec.query_padding`
  (their keys are masked out; their outputs are dropped).
  """
  g = spec.geometry
  o = g.block
  pad = spec.query_padding(o + 1)
  x = tile_branches(spec, x_t)
  bstar = x.shape[0]
  q_pos = np.concatenate([np.arange(g.context + 1, g.window + 1),
                          np.zeros(pad, int), [0]])
  mask = None
  if pad:
    x = jnp.concatenate([x, jnp.zeros((bstar, pad, x.shape[-1]), x.dtype)],
                        axis=1)
    keys = np.ones(len(prefix_positions) + len(q_pos), bool)
    keys[len(prefix_positions) + o:-1] = False
    mask = np.broadcast_to(keys, (len(q_pos), len(keys)))
  tt = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (bstar,))
  out, _ = _model(spec).apply(
      {"params": params}, x, tt, state.cond, _table(spec, q_pos),
      _table(spec, np.concatenate([prefix_positions, q_pos])),
      unknown_features(spec, o + pad, bstar), None, prefix, mask,
      controls=_controls(spec, state, g.context, g.window, pad),
      method=DiT.tokens)
  return out[:, :o]


def ed_step(params, spec, state, x_t, t):
  g = spec.geometry
  out = _target_call(params, spec, state, x_t, t,
                     np.arange(1, g.context + 1), state.kv)
  return state.replace(step=state.step + 1), out


def bc_cached_step(params, spec, state, x_t, t):
  g = spec.geometry
  first = g.context - g.cache_frames + 1
  out = _target_call(params, spec, state, x_t, t,
                     np.arange(first, g.context + 1), state.kv)
  return state.replace(step=state.step + 1), out


def bc_fused_step(params, spec, state, x_t, t):
  """[pending | target | global] vs [cache | themselves]; writes pending."""
  g = spec.geometry
  o, w = g.block, g.window_chunks
  bstar = spec.batch * spec.branches
  pending = tile_branches(spec, state.context[:, -o:])
  x = jnp.concatenate([jnp.zeros_like(pending), tile_branches(spec, x_t)],
                      axis=1)
  feats = jnp.concatenate([known_features(spec, pending),
                           unknown_features(spec, o, bstar)], axis=1)
  router = np.concatenate([np.zeros(o), np.ones(o)]).astype(np.float32)
  q_pos = np.concatenate([np.arange(g.context - o + 1, g.window + 1), [0]])
  k_pos = np.concatenate(
      [np.arange(g.context - w * o + 1, g.context - o + 1), q_pos])
  q_chunks = np.concatenate([np.full(o, w - 1), np.full(o + 1, w)])
  k_chunks = np.concatenate([np.arange(g.cache_frames) // o, q_chunks])
  mask = masks.block_causal_from_chunks(q_chunks, k_chunks, w)
  tt = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (bstar,))
  out, kv_new = _model(spec).apply(
      {"params": params}, x, tt, state.cond, _table(spec, q_pos),
      _table(spec, k_pos), feats, router, state.kv, mask,
      controls=_controls(spec, state, g.context - o, g.window),
      method=DiT.tokens)
  kv = KV(jnp.concatenate([state.kv.k[:, :, o:], kv_new.k[:, :, :o]], 2),
          jnp.concatenate([state.kv.v[:, :, o:], kv_new.v[:, :, :o]], 2))
  return state.replace(kv=kv, step=state.step + 1), out[:, o:]


def outpaint_step(params, spec, state, x_t, t):
  """Baseline: the whole window, context re-noised to level t, no cache."""
  g = spec.geometry
  bstar = spec.batch * spec.branches
  key = jax.random.fold_in(jax.random.PRNGKey(state.seed), state.block)
  eps = jax.random.normal(jax.random.fold_in(key, 10_000),
                          state.context.shape)
  ctx_t = flow.noise(state.context, eps, t)
  x = tile_branches(spec, jnp.concatenate([ctx_t, x_t], axis=1))
  feats = jnp.concatenate(
      [known_features(spec, tile_branches(spec, state.context)),
       unknown_features(spec, g.block, bstar)], axis=1)
  table = _table(spec, np.concatenate([np.arange(1, g.window + 1), [0]]))
  tt = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (bstar,))
  out, _ = _model(spec).apply(
      {"params": params}, x, tt, state.cond, table, table, feats, None, None,
      None, controls=_controls(spec, state, 0, g.window), method=DiT.tokens)
  return state.replace(step=state.step + 1), out[:, g.context:]


def first_step(params, spec, state, x_t, t):
  """The first network call of a block (bc: the fused step)."""
  mode = spec.geometry.mode
  if mode == "bc":
    return bc_fused_step(params, spec, state, x_t, t)
  return later_step(params, spec, state, x_t, t)


def later_step(params, spec, state, x_t, t):
  """Any network call of a block after the first."""
  mode = spec.geometry.mode
  if mode == "bc":
    return bc_cached_step(params, spec, state, x_t, t)
  if mode == "ed":
    return ed_step(params, spec, state, x_t, t)
  return outpaint_step(params, spec, state, x_t, t)


def denoise_step(params, spec: StreamSpec, state: StreamState, x_t, t):
  """One network evaluation for the target block x_t [B, o, C] at level t.

  Returns (state, v_cond [B,o,C], v_uncond [B,o,C] or None). The first call
  of a block is bc's fused step (chosen on device from `state.step`, so the
  host never waits).
  """
  check_latents(spec, x_t, spec.geometry.block, "x_t")
  if spec.geometry.mode == "bc":
    state, out = jax.lax.cond(
        state.step == 0,
        lambda s: bc_fused_step(params, spec, s, x_t, t),
        lambda s: bc_cached_step(params, spec, s, x_t, t), state)
  else:
    state, out = later_step(params, spec, state, x_t, t)
  v_c, v_u = split_branches(spec, out)
  return state, v_c, v_u
