"""How far a block-causal stream drifts from the window it was trained on.

The paper's code trains BC models on fixed windows [s context | o target]:
inside a window the oldest context chunk sees only itself. A stream keeps
the cached keys/values of every chunk as they were computed when that chunk
was newest, and those were computed with W-1 earlier chunks in view, which
in turn saw earlier ones: the stream is sliding-window attention whose
receptive field grows with depth, not a sequence of independent windows.

This measures, for every denoising step of a stream, the relative L2
distance between the stream's velocity and the velocity of a fresh forward
over the current window alone (the training-time view). Block 0 is exact by
construction; the distance after the window has slid shows what the longer
history does. Weights are random unless a checkpoint is given (with SAO's
zero-initialised output layers an untrained model would show nothing).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.diffusion import samplers
from lmdm_jax.streaming.reference import make_sequence_forward, window_inputs
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import StreamSpec, make_controls


def measure(params, spec: StreamSpec, blocks: int, seed: int = 0) -> dict:
  if spec.geometry.mode != "bc":
    raise ValueError("bc-history measures block-causal streams only")
  g, m = spec.geometry, spec.model
  key = jax.random.PRNGKey(seed)
  k_ctx, k_cross, k_glob, key = jax.random.split(key, 4)
  controls = make_controls(
      spec,
      jax.random.normal(k_cross, (spec.batch, spec.cond_tokens,
                                  m.cond_token_dim)),
      jax.random.normal(k_glob, (spec.batch, m.global_cond_dim)), seed=seed)
  context = jax.random.normal(k_ctx, (spec.batch, g.context, m.io_channels))
  stream = Stream(spec)
  window = make_sequence_forward(spec, params)
  mask, table, known = window_inputs(spec)
  state = stream.prime(params, context, controls)
  levels = spec.levels
  per_block = []
  for b in range(blocks):
    state = stream.cache_update(params, state, controls)
    ctx = jnp.copy(state.context)  # state buffers are donated below
    key, kx = jax.random.split(key)
    x = jax.random.normal(kx, (spec.batch, g.block, m.io_channels))
    errs = []
    for i in range(spec.steps):
      ref = window(jnp.concatenate([ctx, x], 1),
                   jnp.full((spec.batch,), levels[i]), controls, known, mask,
                   table)[:, g.context:]
      state, v, _ = stream.denoise_step(params, state, x, levels[i])
      errs.append(float(jnp.linalg.norm(v - ref) /
                        jnp.maximum(jnp.linalg.norm(ref), 1e-12)))
      key, ke = jax.random.split(key)
      x, _ = samplers.step(spec.sampler, x, v, None, levels[i],
                           levels[i + 1], jax.random.normal(ke, x.shape))
    x = x / jnp.maximum(1.0, jnp.std(x))
    state = stream.append_block(state, x)
    per_block.append(float(np.mean(errs)))
  slid = per_block[g.window_chunks:] or per_block
  return {"per_block_rel_l2": per_block,
          "block0_rel_l2": per_block[0],
          "after_window_slid_mean": float(np.mean(slid)),
          "after_window_slid_max": float(np.max(slid))}
